// Runs Amplify's GraphQL transformer (the one Amplify Gen 2's data construct runs) on a model
// schema and turns what it generated into the AppSync simulator's configuration: the schema,
// every resolver with its pipeline functions and mapping templates (VTL), the data sources and
// the model tables' key schemas. Nothing is synthesized to disk: the CloudFormation resources
// are read from the construct tree and their few intrinsics evaluated here.
'use strict';

const { App, Stack, NestedStack, CfnResource } = require('aws-cdk-lib');
const { Construct } = require('constructs');
const { executeTransform } = require('@aws-amplify/graphql-transformer');
const {
  constructDataSourceStrategies,
  DDB_DEFAULT_DATASOURCE_STRATEGY,
} = require('@aws-amplify/graphql-transformer-core');

// The transform parameters Amplify Gen 2's construct uses (amplify-category-api,
// graphql-api-construct: defaultTranslationBehavior, and allowGen1Patterns: false).
const TRANSFORM_PARAMETERS = {
  shouldDeepMergeDirectiveConfigDefaults: true,
  disableResolverDeduping: true,
  sandboxModeEnabled: false,
  useSubUsernameForDefaultIdentityClaim: true,
  populateOwnerFieldForStaticGroupAuth: true,
  suppressApiKeyGeneration: false,
  secondaryKeyAsGSI: true,
  enableAutoIndexQueryNames: true,
  respectPrimaryKeyAttributesOnConnectionField: true,
  enableSearchNodeToNodeEncryption: false,
  enableTransformerCfnOutputs: false,
  allowDestructiveGraphqlSchemaUpdates: false,
  replaceTableUponGsiUpdate: false,
  subscriptionsInheritPrimaryAuth: false,
  allowGen1Patterns: false,
};

// The seeds' authorization modes: API key by default, the user pool for owners, and IAM, which
// Amplify Gen 2 always enables (amplify-backend: convert_authorization_modes.ts).
const AUTH_CONFIG = {
  defaultAuthentication: { authenticationType: 'API_KEY', apiKeyConfig: { apiKeyExpirationDays: 30 } },
  additionalAuthenticationProviders: [
    { authenticationType: 'AMAZON_COGNITO_USER_POOLS', userPoolConfig: { userPoolId: 'local' } },
    { authenticationType: 'AWS_IAM' },
  ],
};

/** A mapping template the transformer wrote, kept in memory under a literal S3 URL. */
class TemplateAsset extends Construct {
  constructor(scope, id, props, templates) {
    super(scope, id);
    templates.set(props.fileName, props.fileContent);
    this.assetHash = props.fileName;
    this.s3BucketName = 'local';
    this.s3ObjectKey = props.fileName;
    this.s3ObjectUrl = `s3://local/${props.fileName}`;
    this.httpUrl = `https://local/${props.fileName}`;
  }
}

/**
 * Transforms `schema` (SDL with @model/@auth) and returns { templates, resources, logs }:
 * the mapping templates by file name and every CloudFormation resource by logical id.
 */
function transform(schema, { apiName = 'local' } = {}) {
  const app = new App();
  const root = new Stack(app, 'api');
  const templates = new Map();
  const logs = [];
  executeTransform({
    schema,
    transformersFactoryArgs: {},
    authConfig: AUTH_CONFIG,
    transformParameters: TRANSFORM_PARAMETERS,
    scope: root,
    nestedStackProvider: { provide: (scope, name) => new NestedStack(scope, name) },
    assetProvider: { provide: (scope, id, props) => new TemplateAsset(scope, id, props, templates) },
    synthParameters: { amplifyEnvironmentName: 'NONE', apiName, enableIamAccess: true, userPoolId: 'local' },
    dataSourceStrategies: constructDataSourceStrategies(schema, DDB_DEFAULT_DATASOURCE_STRATEGY),
    printTransformerLog: (log) => logs.push(`${log.level}: ${log.message}`),
  });
  const resources = {};
  for (const construct of app.node.findAll()) {
    if (!CfnResource.isCfnResource(construct)) continue;
    const type = construct.cfnResourceType;
    if (!type.startsWith('AWS::AppSync::') && type !== 'AWS::DynamoDB::Table') continue;
    Object.assign(resources, Stack.of(construct).resolve(construct._toCloudFormation()).Resources);
  }
  return { templates, resources, logs };
}

/**
 * Evaluates the intrinsics the transformer's AppSync resources use: Fn::Join, Ref to a table
 * or a pseudo parameter, Fn::GetAtt of the API's id, a data source's or a function's name.
 */
function evaluate(value, resources, context) {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map((v) => evaluate(v, resources, context));
  if (value && typeof value === 'object') {
    if ('Fn::Join' in value) {
      const [separator, parts] = value['Fn::Join'];
      return evaluate(parts, resources, context).join(separator);
    }
    if ('Ref' in value) {
      const ref = value.Ref;
      if (ref === 'AWS::Region') return context.region;
      if (ref === 'AWS::AccountId') return context.accountId;
      if (ref === 'AWS::URLSuffix') return 'amazonaws.com';
      const target = resources[ref];
      if (target && target.Type === 'AWS::DynamoDB::Table') return tableName(target, resources, context);
      throw new Error(`cannot evaluate Ref ${ref}`);
    }
    if ('Fn::GetAtt' in value) {
      const [logicalId, attribute] = value['Fn::GetAtt'];
      const target = resources[logicalId];
      if (!target) throw new Error(`cannot evaluate Fn::GetAtt of unknown ${logicalId}`);
      if (target.Type === 'AWS::AppSync::GraphQLApi' && attribute === 'ApiId') return context.apiId;
      if (['AWS::AppSync::DataSource', 'AWS::AppSync::FunctionConfiguration'].includes(target.Type)) {
        if (attribute === 'Name' || attribute === 'FunctionId') return evaluate(target.Properties.Name, resources, context);
      }
      throw new Error(`cannot evaluate Fn::GetAtt ${logicalId}.${attribute}`);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, evaluate(v, resources, context)]));
  }
  return value;
}

function tableName(table, resources, context) {
  return evaluate(table.Properties.TableName, resources, context);
}

/** A template named by a literal s3://local/ URL, or the inline one. */
function templateRef(props, which, templates) {
  const location = props[`${which}MappingTemplateS3Location`];
  if (location !== undefined) {
    const path = String(location).replace(/^s3:\/\/local\//, '');
    if (!templates.has(path)) throw new Error(`the transformer wrote no template ${path}`);
    return { [`${which.toLowerCase()}MappingTemplateLocation`]: path };
  }
  return { [`${which.toLowerCase()}MappingTemplate`]: props[`${which}MappingTemplate`] };
}

/**
 * The simulator's configuration for `schema`, its DynamoDB data sources at `dynamodb`
 * ({ endpoint, region, credentials }), and the model tables' definitions (CreateTable input).
 */
function simulatorConfig(schema, { apiId, region, accountId, dynamodb }) {
  const { templates, resources, logs } = transform(schema, { apiName: apiId });
  const context = { apiId, region, accountId };
  const byType = (type) => Object.values(resources).filter((r) => r.Type === type);
  // Only the properties the simulator needs (a role's ARN, say, has no local meaning).
  const SERVED = ['Name', 'Type', 'DynamoDBConfig', 'DataSourceName', 'TypeName', 'FieldName', 'Kind',
    'PipelineConfig', 'RequestMappingTemplate', 'ResponseMappingTemplate', 'RequestMappingTemplateS3Location',
    'ResponseMappingTemplateS3Location', 'AuthenticationType', 'AdditionalAuthenticationProviders'];
  const props = (r) =>
    evaluate(Object.fromEntries(Object.entries(r.Properties).filter(([k]) => SERVED.includes(k))), resources, context);

  const tables = byType('AWS::DynamoDB::Table').map((table) => {
    const p = table.Properties;
    const input = {
      TableName: tableName(table, resources, context),
      KeySchema: p.KeySchema,
      AttributeDefinitions: p.AttributeDefinitions,
      BillingMode: 'PAY_PER_REQUEST',
    };
    if (p.GlobalSecondaryIndexes) {
      input.GlobalSecondaryIndexes = p.GlobalSecondaryIndexes.map(({ ProvisionedThroughput, ...gsi }) => gsi);
    }
    if (p.StreamSpecification) {
      input.StreamSpecification = { StreamEnabled: true, StreamViewType: p.StreamSpecification.StreamViewType };
    }
    return input;
  });

  const dataSources = byType('AWS::AppSync::DataSource').map((r) => {
    const p = props(r);
    if (p.Type === 'AMAZON_DYNAMODB') {
      return {
        type: 'AMAZON_DYNAMODB',
        name: p.Name,
        config: { endpoint: dynamodb.endpoint, region: dynamodb.region, tableName: p.DynamoDBConfig.TableName },
        options: { credentials: dynamodb.credentials },
      };
    }
    if (p.Type === 'NONE') return { type: 'NONE', name: p.Name };
    throw new Error(`data source ${p.Name}: type ${p.Type} is not served here`);
  });

  const functions = byType('AWS::AppSync::FunctionConfiguration').map((r) => {
    const p = props(r);
    return {
      name: p.Name,
      dataSourceName: p.DataSourceName,
      ...templateRef(p, 'Request', templates),
      ...templateRef(p, 'Response', templates),
    };
  });

  const resolvers = byType('AWS::AppSync::Resolver').map((r) => {
    const p = props(r);
    const resolver = {
      typeName: p.TypeName,
      fieldName: p.FieldName,
      kind: p.Kind || 'UNIT',
      ...templateRef(p, 'Request', templates),
      ...templateRef(p, 'Response', templates),
    };
    if (resolver.kind === 'PIPELINE') resolver.functions = p.PipelineConfig.Functions;
    else resolver.dataSourceName = p.DataSourceName;
    return resolver;
  });

  const mappingTemplates = [...templates.entries()]
    .filter(([path]) => path.endsWith('.vtl'))
    .map(([path, content]) => ({ path, content }));

  const api = props(byType('AWS::AppSync::GraphQLApi')[0]);
  const provider = (mode) => {
    if (mode.AuthenticationType === 'AMAZON_COGNITO_USER_POOLS') {
      return { authenticationType: mode.AuthenticationType, cognitoUserPoolConfig: {} };
    }
    return { authenticationType: mode.AuthenticationType };
  };
  return {
    config: {
      schema: { content: templates.get('schema.graphql') },
      resolvers,
      functions,
      dataSources,
      mappingTemplates,
      appSync: {
        name: apiId,
        accountId,
        defaultAuthenticationType: provider(api),
        additionalAuthenticationProviders: (api.AdditionalAuthenticationProviders || []).map(provider),
      },
    },
    tables,
    templates,
    logs,
  };
}

module.exports = { transform, simulatorConfig };
