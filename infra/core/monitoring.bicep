// Log Analytics workspace + workspace-based Application Insights.
// Local (instrumentation-key) authentication is disabled on Application Insights, so
// telemetry is accepted only with an Entra ID token: the app sends
// APPLICATIONINSIGHTS_AUTHENTICATION_STRING with the user-assigned identity's client id,
// and that identity holds Monitoring Metrics Publisher on the component (core/rbac.bicep).

@description('Log Analytics workspace name.')
param logAnalyticsName string

@description('Application Insights component name.')
param applicationInsightsName string

@description('Azure region.')
param location string

@description('Tags for the monitoring resources.')
param tags object = {}

@description('Days Log Analytics keeps data.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2025-07-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

output logAnalyticsId string = logAnalytics.id
output applicationInsightsName string = applicationInsights.name
output applicationInsightsId string = applicationInsights.id
// The connection string holds the ingestion endpoint and an instrumentation key, which is
// an identifier, not a credential (local auth is disabled), so it is an ordinary output.
output connectionString string = applicationInsights.properties.ConnectionString
