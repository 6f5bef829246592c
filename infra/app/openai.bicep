// Azure OpenAI account with one chat and one embedding deployment.
// Keyless: local (API-key) authentication is disabled; callers use Entra ID tokens and
// need the Cognitive Services OpenAI User role (granted in app/openai-access.bicep).

@description('Account name; also used as the custom subdomain (<name>.openai.azure.com), which Entra ID auth requires.')
param name string

@description('Azure region (must offer the chosen models and SKUs).')
param location string

@description('Tags for the account.')
param tags object = {}

@description('Account kind: OpenAI, or AIServices (Azure AI Foundry resource, also serves the OpenAI endpoint).')
@allowed([
  'OpenAI'
  'AIServices'
])
param kind string = 'OpenAI'

@description('Public network access to the account.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Chat deployment name (what clients send as "model").')
param chatDeploymentName string

@description('Chat model name, e.g. gpt-4.1-mini.')
param chatModelName string

@description('Chat model version, e.g. 2025-04-14.')
param chatModelVersion string

@description('Chat deployment SKU: GlobalStandard, DataZoneStandard, Standard, ...')
param chatSkuName string

@description('Chat deployment capacity, in thousands of tokens per minute.')
param chatCapacity int

@description('Embedding deployment name (what clients send as "model").')
param embeddingDeploymentName string

@description('Embedding model name, e.g. text-embedding-3-small.')
param embeddingModelName string

@description('Embedding model version, e.g. 1.')
param embeddingModelVersion string

@description('Embedding deployment SKU: GlobalStandard, Standard, ...')
param embeddingSkuName string

@description('Embedding deployment capacity, in thousands of tokens per minute.')
param embeddingCapacity int

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_134: Public network access is the publicNetworkAccess parameter (Enabled by default: private endpoints are not in scope by default). Access needs an Entra ID token and the OpenAI User role; keys are disabled.
  // checkov:skip=CKV_AZURE_238: The account calls no other resource (no customer-managed keys, no storage access), so an identity of its own would be unused.
  name: name
  location: location
  tags: tags
  kind: kind
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

resource chatDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: chatDeploymentName
  sku: {
    name: chatSkuName
    capacity: chatCapacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: chatModelName
      version: chatModelVersion
    }
    versionUpgradeOption: 'OnceNewDefaultVersionAvailable'
  }
}

// Azure rejects concurrent deployment operations on one account, so the embedding
// deployment waits for the chat deployment.
resource embeddingDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: embeddingDeploymentName
  sku: {
    name: embeddingSkuName
    capacity: embeddingCapacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: embeddingModelName
      version: embeddingModelVersion
    }
    versionUpgradeOption: 'OnceNewDefaultVersionAvailable'
  }
  dependsOn: [
    chatDeployment
  ]
}

output name string = account.name
output id string = account.id
output chatDeploymentName string = chatDeployment.name
output embeddingDeploymentName string = embeddingDeployment.name
