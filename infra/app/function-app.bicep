// The gateway: a Python function app on a Flex Consumption plan.
// Everything it touches is reached with the one user-assigned managed identity; no keys,
// no connection strings with secrets. Every app setting the Python code reads is listed
// in infra/app-settings.json; tests/infra checks that this file sets exactly those
// (plus the documented platform settings).
//
// Note for editors: pycep, the Bicep parser checkov uses, accepts at most 9 comment lines
// right after an opening brace and at most 4 between two properties of an object.

@description('Function app name (also the default host name prefix).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region (must offer Flex Consumption).')
param location string

@description('Tags for the plan and the app.')
param tags object = {}

@description('azd service name; must match the service in azure.yaml.')
param serviceName string = 'api'

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Blob endpoint of the storage account (ends with /).')
param storageBlobEndpoint string

@description('Queue endpoint of the storage account (ends with /).')
param storageQueueEndpoint string

@description('Table endpoint of the storage account (ends with /).')
param storageTableEndpoint string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (an identifier, not a secret: local auth is disabled).')
param applicationInsightsConnectionString string

@description('Python version of the Flex Consumption runtime.')
param pythonVersion string = '3.13'

// Scale parameters carry no default here: main.bicep holds the one default of each.
@description('Memory per instance, in MB (the Flex Consumption instance sizes).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Upper bound of on-demand instances per scale group. Flex Consumption accepts 40-1000 (event-driven-scaling#limit-scale-out).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Concurrent HTTP requests per instance before the platform adds one. Flex defaults Python apps to 1, far too low for an I/O-bound relay.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('Always-ready instances for the HTTP scale group (billed even when idle). 0: scale to zero, cold starts possible.')
@minValue(0)
param alwaysReadyInstances int

@description('Azure OpenAI endpoint, https://<account>.openai.azure.com/ (the code appends openai/v1/).')
param openAiEndpoint string

@description('OPENAI_MODELS: comma-separated allowlist of deployment names and alias=deployment pairs.')
param openAiModels string

@description('MCP_ALLOWED_SERVERS: comma-separated allowed MCP server URL prefixes (empty: none).')
param mcpAllowedServers string = ''

@description('CORS_ALLOWED_ORIGINS: comma-separated exact origins the app itself answers CORS for (empty: none).')
param corsAllowedOrigins string = ''

@description('MAX_REQUEST_BYTES: largest accepted request body.')
@minValue(1)
param maxRequestBytes int = 4194304

@description('REQUEST_TIMEOUT_SECONDS: upstream timeout; must stay below the 230 s HTTP response limit of the platform.')
@minValue(1)
@maxValue(229)
param requestTimeoutSeconds int = 220

@description('RETRY_MAX_ATTEMPTS: upstream attempts per request for retryable errors; the code requires a positive number.')
@minValue(1)
@maxValue(10)
param retryMaxAttempts int = 4

@description('LOG_CONTENT: log prompt/response bodies. Keep false outside debugging.')
param logContent bool = false

@description('CALLER_TOKENS_PER_MINUTE: tokens each caller may use per sliding minute; 0 turns the limit off.')
@minValue(0)
param callerTokensPerMinute int = 0

@description('CALLER_OUTPUT_TOKEN_ALLOWANCE: output tokens the caller limit reserves for a call that sets no maximum.')
@minValue(0)
param callerOutputTokenAllowance int = 4096

@description('DATA_RETENTION_DAYS: days finished jobs, batches and their files are kept before the sweep deletes them.')
@minValue(1)
param dataRetentionDays int = 30

@description('Queue for embedding jobs.')
param jobsQueueName string

@description('Blob container for embedding-job data.')
param jobsContainerName string

@description('Table for embedding-job status.')
param jobsTableName string

@description('Client id of the Entra ID app registration that protects the API. Empty: App Service Authentication stays off.')
param authClientId string = ''

@description('Paths that stay reachable without a token when App Service Authentication is on: the routes the app itself serves anonymously.')
param authExcludedPaths array = [
  '/api/health'
  '/api/openapi.json'
  '/api/ui'
  '/api/ui/*'
]

var enableAuth = !empty(authClientId)

// Every setting of the app, in one place. Names match infra/app-settings.json.
// Not set on purpose: AZURE_OPENAI_API_KEY (keyless) and OPENAI_BASE_URL (local use only),
// nothing Flex Consumption rejects or ignores (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE, ...: tests/infra/test_flex_platform_rules.py lists them with their
// source): the runtime comes from functionAppConfig instead. Nor PYTHON_ENABLE_INIT_INDEXING:
// Python 3.13 streams HTTP without it (only local 3.11/3.12 runs need it).
var settings = {
  // Identity used by DefaultAzureCredential / ManagedIdentityCredential in the code.
  AZURE_CLIENT_ID: identityClientId

  // Upstream.
  AZURE_OPENAI_ENDPOINT: openAiEndpoint
  OPENAI_MODELS: openAiModels
  MCP_ALLOWED_SERVERS: mcpAllowedServers

  // Limits and behaviour.
  MAX_REQUEST_BYTES: string(maxRequestBytes)
  CORS_ALLOWED_ORIGINS: corsAllowedOrigins
  REQUEST_TIMEOUT_SECONDS: string(requestTimeoutSeconds)
  RETRY_MAX_ATTEMPTS: string(retryMaxAttempts)
  LOG_CONTENT: logContent ? 'true' : 'false'
  CALLER_TOKENS_PER_MINUTE: string(callerTokensPerMinute)
  CALLER_OUTPUT_TOKEN_ALLOWANCE: string(callerOutputTokenAllowance)
  DATA_RETENTION_DAYS: string(dataRetentionDays)

  // Embedding jobs (queue trigger + blob + table, all through AzureWebJobsStorage).
  EMBEDDING_JOBS_QUEUE: jobsQueueName
  EMBEDDING_JOBS_CONTAINER: jobsContainerName
  EMBEDDING_JOBS_TABLE: jobsTableName

  // Host storage, identity-based (no connection string, no key).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storageTableEndpoint

  // Telemetry with Entra ID auth (Application Insights local auth is disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption is region-dependent and adds always-ready instances (a standing cost); the default deployment is single-zone.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: The gateway is a public HTTPS API; private endpoints and VNet integration are out of scope for the default deployment.
  // checkov:skip=CKV_AZURE_17: Client certificates are not used; callers authenticate with Entra ID bearer tokens (App Service Authentication, see authClientId).
  // checkov:skip=CKV_AZURE_67: HTTP/2 is a performance setting, left at the platform default on Flex Consumption (support for siteConfig.http20Enabled there is not verifiable offline).
  // checkov:skip=CKV_AZURE_18: Same as CKV_AZURE_67 (HTTP/2 left at the platform default).
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per app from zero (functionAppConfig.scaleAndConcurrency); siteConfig.numberOfWorkers does not apply, and always-ready instances are a cost choice.
  // checkov:skip=CKV_AZURE_213: No platform health check on Flex Consumption here; /api/health is served by the app (and excluded from auth) for external probes.
  // checkov:skip=CKV_AZURE_78: The check wants siteConfig.ftpsState, which Flex Consumption refuses at create time (functions-app-settings#flex-consumption-plan-deprecations); FTP is off through the ftp basicPublishingCredentialsPolicies below (allow: false).
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    siteConfig: {
      // Settings inline (not a separate config resource) so the host finds its storage,
      // identity and telemetry settings from its very first start.
      appSettings: [for setting in items(settings): {
        name: setting.key
        value: setting.value
      }]
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // The app answers CORS itself from CORS_ALLOWED_ORIGINS. Platform CORS stays empty on
      // purpose: if both were set, browsers would receive duplicate
      // Access-Control-Allow-Origin headers and reject the response.
      cors: {
        allowedOrigins: []
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: (alwaysReadyInstances > 0) ? [
          {
            name: 'http'
            instanceCount: alwaysReadyInstances
          }
        ] : []
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No FTP and no SCM (Kudu) user/password: deployments authenticate with Entra ID (azd does).
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication (Entra ID), only when authClientId is given. A module rather
// than a conditional resource so that scanners evaluate its settings.
module auth 'function-app-auth.bicep' = if (enableAuth) {
  name: 'function-app-auth'
  params: {
    functionAppName: functionApp.name
    clientId: authClientId
    excludedPaths: authExcludedPaths
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
output uri string = 'https://${functionApp.properties.defaultHostName}'
