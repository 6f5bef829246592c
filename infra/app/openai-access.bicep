// Grants Cognitive Services OpenAI User on an Azure OpenAI account (new or existing)
// and reports its endpoint. Deployed into the account's resource group, so it also
// serves the "bring your own account" case (existingOpenAiAccountName).

@description('Name of the Azure OpenAI (or AIServices) account in this resource group.')
param accountName string

@description('Principal id of the app\'s user-assigned managed identity.')
param identityPrincipalId string

@description('Optional principal id of the developer (or CI principal) running azd, for local runs against Azure. Empty: no assignment.')
param userPrincipalId string = ''

@description('Principal type of userPrincipalId.')
@allowed([
  'User'
  'ServicePrincipal'
])
param userPrincipalType string = 'User'

// Cognitive Services OpenAI User: call inference APIs, no management or key access.
var cognitiveServicesOpenAiUserRoleId = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

resource identityOpenAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, identityPrincipalId, cognitiveServicesOpenAiUserRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAiUserRoleId)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userOpenAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(account.id, userPrincipalId, cognitiveServicesOpenAiUserRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAiUserRoleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// The code appends "openai/v1/" to this. Built from the custom subdomain (which keyless
// access requires) so that OpenAI and AIServices accounts yield the same OpenAI endpoint.
output endpoint string = 'https://${account.properties.customSubDomainName}.openai.azure.com/'
output id string = account.id
