// App Service Authentication ("Easy Auth", authsettingsV2) with Microsoft Entra ID for the
// function app. Every request needs a bearer token issued by this tenant for the app
// registration (audience api://<clientId>; the client id itself is always accepted too);
// requests without one get 401. The excluded paths (the app's anonymous routes) stay public.

@description('Name of the function app in this resource group.')
param functionAppName string

@description('Client id of the Entra ID app registration that represents the API.')
param clientId string

@description('Paths reachable without a token (function-app.bicep passes the app\'s anonymous routes).')
param excludedPaths array

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: False positive: checks the legacy 'web'/'authsettings' shape; this authsettingsV2 document enables auth via platform.enabled (CKV_AZURE_56 passes).
  // checkov:skip=CKV_AZURE_63: Not applicable: HTTP logging is a 'web' config property, not part of authsettingsV2; Flex Consumption logs go to Application Insights.
  // checkov:skip=CKV_AZURE_65: Not applicable: detailed error pages are a 'web' config property, not part of authsettingsV2.
  // checkov:skip=CKV_AZURE_66: Not applicable: failed request tracing is a 'web' config property, not part of authsettingsV2.
  // checkov:skip=CKV_AZURE_80: Not applicable: .NET Framework version is a 'web' config property; this is a Python app.
  // checkov:skip=CKV_AZURE_88: Not applicable: Azure Files mounts are a 'web' config property; Flex Consumption uses blob deployment storage.
  // checkov:skip=CKV_AZURE_222: Not applicable: public network access is a site property (see the skip on the site in function-app.bicep).
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: excludedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${clientId}'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}
