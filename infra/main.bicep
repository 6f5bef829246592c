// Azure OpenAI gateway on Azure Functions (Flex Consumption, Python), deployed by `azd up`.
// Subscription-scoped: creates the resource group rg-<environmentName> and everything in it.
// Parameters come from main.parameters.json (azd fills ${AZURE_ENV_NAME} and friends).

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds resource names.')
param environmentName string

// Regions that offer Flex Consumption: `az functionapp list-flexconsumption-locations`
// (learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#view-currently-supported-regions).
// A region without it would fail late, at the plan, after the other resources exist; with this
// list azd prompts only for these. Add a region here when Microsoft adds it.
@minLength(1)
@description('Region for all resources. Must offer Flex Consumption (this list) and, unless openAiLocation is set, the chosen models.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Principal id of the developer running azd (AZURE_PRINCIPAL_ID). Gets the same data roles as the app so the code can run locally against these resources. Empty: skipped.')
param principalId string = ''

@description('Type of principalId: User for a developer, ServicePrincipal for a CI pipeline.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

// ---------------- function app ----------------

@description('Client id of the Entra ID app registration protecting the API. Empty: App Service Authentication is not configured.')
param authClientId string = ''

@description('Memory per Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Maximum on-demand Flex Consumption instances per scale group (MAXIMUM_INSTANCE_COUNT). The platform accepts 40-1000.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

// Measured: 128 paced streams take ~24% of one vCPU and <90 MiB (`python -m bench --concurrency-only`,
// README "Deploy with `azd up`"); the same default is in main.parameters.json (a test keeps the two equal).
@description('Concurrent HTTP requests per instance before Flex Consumption adds one (HTTP_PER_INSTANCE_CONCURRENCY). Python apps default to 1 otherwise.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 128

@description('Always-ready HTTP instances (ALWAYS_READY_INSTANCES): no cold start, billed even when idle. 0: scale to zero.')
@minValue(0)
param alwaysReadyInstances int = 0

@description('Comma-separated exact origins allowed by the app\'s own CORS handling (CORS_ALLOWED_ORIGINS).')
param corsAllowedOrigins string = ''

@description('Comma-separated MCP server URL prefixes the gateway may call (MCP_ALLOWED_SERVERS). Empty: none.')
param mcpAllowedServers string = ''

@description('Extra model aliases appended to OPENAI_MODELS, comma-separated alias=deployment pairs.')
param openAiModelAliases string = ''

@description('Largest accepted request body in bytes (MAX_REQUEST_BYTES).')
@minValue(1)
param maxRequestBytes int = 4194304

@description('Upstream request timeout in seconds (REQUEST_TIMEOUT_SECONDS); below the 230 s platform HTTP limit.')
@minValue(1)
@maxValue(229)
param requestTimeoutSeconds int = 220

@description('Upstream attempts per request, including the first (RETRY_MAX_ATTEMPTS); the code requires a positive number.')
@minValue(1)
@maxValue(10)
param retryMaxAttempts int = 4

@description('Log request/response content (LOG_CONTENT). Keep false outside debugging.')
param logContent bool = false

@description('Tokens each caller may use per sliding minute (CALLER_TOKENS_PER_MINUTE); 0: no per-caller limit.')
@minValue(0)
param callerTokensPerMinute int = 0

@description('Output tokens the per-caller limit reserves for a call that sets no maximum (CALLER_OUTPUT_TOKEN_ALLOWANCE).')
@minValue(0)
param callerOutputTokenAllowance int = 4096

@description('Days a finished embedding job or batch and its data, and a file without its own expiry, are kept (DATA_RETENTION_DAYS); the storage lifecycle policy deletes what is left some days later.')
@minValue(1)
param dataRetentionDays int = 30

// ---------------- Azure OpenAI ----------------

@description('Name of an existing Azure OpenAI / AIServices account to use instead of creating one. Its chat and embedding deployments must already exist with the names below.')
param existingOpenAiAccountName string = ''

@description('Resource group of existingOpenAiAccountName (same subscription). Empty: the environment\'s resource group.')
param existingOpenAiResourceGroup string = ''

@description('Region of the new Azure OpenAI account. Empty: same as location.')
param openAiLocation string = ''

@description('Kind of the new account.')
@allowed([
  'OpenAI'
  'AIServices'
])
param openAiKind string = 'OpenAI'

@description('Public network access of the new account.')
@allowed([
  'Enabled'
  'Disabled'
])
param openAiPublicNetworkAccess string = 'Enabled'

@description('Chat deployment name.')
param chatDeploymentName string = 'gpt-4.1-mini'

@description('Chat model name.')
param chatModelName string = 'gpt-4.1-mini'

@description('Chat model version.')
param chatModelVersion string = '2025-04-14'

@description('Chat deployment SKU (GlobalStandard, DataZoneStandard, Standard, ...).')
param chatSkuName string = 'GlobalStandard'

@description('Chat capacity in thousands of tokens per minute.')
@minValue(1)
param chatCapacity int = 50

@description('Embedding deployment name.')
param embeddingDeploymentName string = 'text-embedding-3-small'

@description('Embedding model name.')
param embeddingModelName string = 'text-embedding-3-small'

@description('Embedding model version.')
param embeddingModelVersion string = '1'

@description('Embedding deployment SKU (GlobalStandard, Standard, ...).')
param embeddingSkuName string = 'GlobalStandard'

@description('Embedding capacity in thousands of tokens per minute.')
@minValue(1)
param embeddingCapacity int = 50

// ---------------- names ----------------

var tags = {
  'azd-env-name': environmentName
}
var resourceGroupName = 'rg-${environmentName}'
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var serviceName = 'api'

var identityName = 'id-${resourceToken}'
var storageAccountName = 'st${resourceToken}'
var logAnalyticsName = 'log-${resourceToken}'
var applicationInsightsName = 'appi-${resourceToken}'
var planName = 'plan-${resourceToken}'
var functionAppName = 'func-${resourceToken}'

var deploymentContainerName = 'app-package'
// Embedding jobs: names the code reads from EMBEDDING_JOBS_* (see infra/app-settings.json).
// The poison queue name is the Functions host convention: <queue>-poison.
var jobsQueueName = 'embedding-jobs'
var jobsPoisonQueueName = '${jobsQueueName}-poison'
var jobsContainerName = 'embedding-jobs'
var jobsTableName = 'embeddingjobs'
// Fixed name, not a setting: the per-caller limit counts (shared/quota.py TABLE).
var usageTableName = 'callerusage'

var useExistingOpenAi = !empty(existingOpenAiAccountName)
var openAiAccountName = useExistingOpenAi ? existingOpenAiAccountName : 'oai-${resourceToken}'
var openAiResourceGroupName = useExistingOpenAi && !empty(existingOpenAiResourceGroup) ? existingOpenAiResourceGroup : resourceGroupName
var openAiModels = empty(openAiModelAliases) ? '${chatDeploymentName},${embeddingDeploymentName}' : '${chatDeploymentName},${embeddingDeploymentName},${openAiModelAliases}'

// ---------------- resources ----------------

resource rg 'Microsoft.Resources/resourceGroups@2024-07-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: identityName
    location: location
    tags: tags
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: storageAccountName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    jobsContainerName: jobsContainerName
    jobsQueueName: jobsQueueName
    jobsPoisonQueueName: jobsPoisonQueueName
    jobsTableName: jobsTableName
    usageTableName: usageTableName
    dataRetentionDays: dataRetentionDays
  }
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: logAnalyticsName
    applicationInsightsName: applicationInsightsName
    location: location
    tags: tags
  }
}

module rbac 'core/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module openAi 'app/openai.bicep' = if (!useExistingOpenAi) {
  name: 'openai'
  scope: rg
  params: {
    name: openAiAccountName
    location: empty(openAiLocation) ? location : openAiLocation
    tags: tags
    kind: openAiKind
    publicNetworkAccess: openAiPublicNetworkAccess
    chatDeploymentName: chatDeploymentName
    chatModelName: chatModelName
    chatModelVersion: chatModelVersion
    chatSkuName: chatSkuName
    chatCapacity: chatCapacity
    embeddingDeploymentName: embeddingDeploymentName
    embeddingModelName: embeddingModelName
    embeddingModelVersion: embeddingModelVersion
    embeddingSkuName: embeddingSkuName
    embeddingCapacity: embeddingCapacity
  }
}

// Role on the account (new, or existing in its own resource group) + its endpoint.
module openAiAccess 'app/openai-access.bicep' = {
  // Unique per environment: an existing account's resource group may be shared.
  name: 'openai-access-${resourceToken}'
  scope: resourceGroup(openAiResourceGroupName)
  params: {
    accountName: openAiAccountName
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
  dependsOn: [
    rg
    openAi
  ]
}

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: planName
    location: location
    tags: tags
    serviceName: serviceName
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    alwaysReadyInstances: alwaysReadyInstances
    openAiEndpoint: openAiAccess.outputs.endpoint
    openAiModels: openAiModels
    mcpAllowedServers: mcpAllowedServers
    corsAllowedOrigins: corsAllowedOrigins
    maxRequestBytes: maxRequestBytes
    requestTimeoutSeconds: requestTimeoutSeconds
    retryMaxAttempts: retryMaxAttempts
    logContent: logContent
    callerTokensPerMinute: callerTokensPerMinute
    callerOutputTokenAllowance: callerOutputTokenAllowance
    dataRetentionDays: dataRetentionDays
    jobsQueueName: storage.outputs.jobsQueueName
    jobsContainerName: storage.outputs.jobsContainerName
    jobsTableName: storage.outputs.jobsTableName
    authClientId: authClientId
  }
  // The host starts as soon as the app exists: let it find its storage and telemetry
  // roles already in place.
  dependsOn: [
    rbac
  ]
}

// ---------------- outputs (azd writes these into the environment's .env) ----------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_URL string = functionApp.outputs.uri
output AZURE_OPENAI_ENDPOINT string = openAiAccess.outputs.endpoint
output AZURE_OPENAI_CHAT_DEPLOYMENT string = chatDeploymentName
output AZURE_OPENAI_EMBEDDING_DEPLOYMENT string = embeddingDeploymentName
output OPENAI_MODELS string = openAiModels
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output EMBEDDING_JOBS_QUEUE string = jobsQueueName
output EMBEDDING_JOBS_CONTAINER string = jobsContainerName
output EMBEDDING_JOBS_TABLE string = jobsTableName
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
