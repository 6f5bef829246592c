// Storage account for the Functions host (AzureWebJobsStorage), the Flex Consumption
// deployment package and the embedding-job queue, blob container and table.
// Keyless: shared-key access is disabled, so every caller authenticates with Entra ID
// (the app's user-assigned identity, or the developer's own account).

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for the storage account.')
param tags object = {}

@description('Replication SKU. Standard_LRS is the cheapest; use Standard_ZRS where the region offers it.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_LRS'

@description('Blob container that Flex Consumption reads the deployment package from.')
param deploymentContainerName string

@description('Blob container for embedding-job inputs and results.')
param jobsContainerName string

@description('Queue for embedding jobs.')
param jobsQueueName string

@description('Poison queue the Functions host moves failed embedding-job messages to.')
param jobsPoisonQueueName string

@description('Table holding embedding-job status.')
param jobsTableName string

@description('Table holding per-caller token counts shared across instances (shared/quota.py).')
param usageTableName string

@description('Days a deleted blob or container can be restored.')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 7

@description('Days finished job and batch data and files without their own expiry are kept (the app setting DATA_RETENTION_DAYS, default 30); the lifecycle policy deletes what the app left some days later.')
@minValue(1)
param dataRetentionDays int = 30

// The lifecycle policy is a backstop behind the app's hourly sweep (shared/jobs/sweeper.py), so it
// must never delete before the app would: past the retention and past the longest expiry a caller
// can ask for (a file's expires_after, at most 30 days as on OpenAI), plus a week for blobs written
// before their job or batch ended (a batch's completion window is a day) and for missed sweeps.
var longestFileExpiryDays = 30
var lifecycleMarginDays = 7
var jobDataDeleteAfterDays = max(dataRetentionDays, longestFileExpiryDays) + lifecycleMarginDays

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Default action stays Allow: without VNet integration (out of scope by default) the Flex Consumption app reaches storage over its public endpoint. Access is Entra ID only (shared keys off).
  // checkov:skip=CKV_AZURE_59: Public network access stays enabled for the same reason as CKV_AZURE_35; private endpoints are not in scope by default.
  // checkov:skip=CKV_AZURE_206: Replication is the skuName parameter; LRS is the default because the account holds only the deployment package and short-lived job data.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

// Deletes job, batch and file blobs some days after their last write (the deployment package
// container and the host's own containers are not matched: prefixes start with the jobs container).
resource jobDataLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-job-data'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${jobsContainerName}/jobs/'
                '${jobsContainerName}/files/'
                '${jobsContainerName}/poison/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: jobDataDeleteAfterDays
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: jobDataDeleteAfterDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource jobsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: jobsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource jobsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: jobsQueueName
}

resource jobsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: jobsPoisonQueueName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource jobsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: jobsTableName
}

resource usageTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: usageTableName
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
output jobsContainerName string = jobsContainer.name
output jobsQueueName string = jobsQueue.name
output jobsPoisonQueueName string = jobsPoisonQueue.name
output jobsTableName string = jobsTable.name
