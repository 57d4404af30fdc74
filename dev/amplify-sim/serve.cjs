#!/usr/bin/env node
// Amplify's AppSync simulator serving the resolvers Amplify's GraphQL transformer generates for
// a model schema (default: schema.graphql beside this file), with its DynamoDB data sources on
// a given endpoint (moto's, on the local stack). Creates the model tables there with the key
// schema the transformer's stack declares, listens on 127.0.0.1 only, prints
//   MODEL_TABLE <Type> <table name>     (one per model)
//   READY http://127.0.0.1:<port>/graphql
// and stops cleanly (exit 0) on SIGTERM or SIGINT. Logs go to stderr with e-mail addresses
// redacted (the simulator logs a failed DynamoDB request's whole payload).
//
// Usage: node serve.cjs --dynamodb-endpoint URL [--port N] [--region R] [--api-id ID]
//                       [--schema PATH] [--dump DIR]
// Credentials for DynamoDB: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN).
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+/g;
const redact = (text) => String(text).replace(EMAIL, '<redacted-email>');

// Everything the simulator and the transformer print goes to stderr, scrubbed: stdout carries
// only the MODEL_TABLE and READY lines.
const util = require('util');
for (const method of ['log', 'info', 'warn', 'error', 'debug']) {
  console[method] = (...args) => process.stderr.write(`${redact(util.format(...args))}\n`);
}

function usage(message) {
  process.stderr.write(`serve.cjs: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { port: 0, region: process.env.AWS_REGION || 'us-east-1', apiId: 'localapi',
    schema: path.join(__dirname, 'schema.graphql') };
  const names = { '--port': 'port', '--region': 'region', '--api-id': 'apiId', '--schema': 'schema',
    '--dynamodb-endpoint': 'dynamodbEndpoint', '--dump': 'dump' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || argv[i + 1] === undefined) usage(`unknown or incomplete option ${argv[i]}`);
    options[key] = argv[i + 1];
  }
  options.port = Number(options.port);
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) usage('--port: 0..65535');
  if (!options.dynamodbEndpoint) usage('--dynamodb-endpoint is required');
  const endpoint = new URL(options.dynamodbEndpoint);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(endpoint.hostname)) {
    usage(`--dynamodb-endpoint must be on loopback, not ${endpoint.hostname}`);
  }
  if (!/^[A-Za-z0-9]+$/.test(options.apiId)) usage('--api-id: letters and digits');
  return options;
}

// The simulator listens on every interface (server.listen(port)); the local stack binds to
// loopback only.
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function listenOnLoopback(...args) {
  if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};

/** A free port on 127.0.0.1 (the simulator wants a number; 0 would make it pick 8900-9999). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = http.createServer();
    server.once('error', reject);
    listen.call(server, 0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function createTables(client, tables) {
  const { CreateTableCommand, DescribeTableCommand } = require('@aws-sdk/client-dynamodb');
  for (const table of tables) {
    try {
      await client.send(new CreateTableCommand(table));
    } catch (e) {
      if (e.name !== 'ResourceInUseException') throw e;
      // Already there (a restarted simulator on the same moto): it must have the same key.
      const existing = (await client.send(new DescribeTableCommand({ TableName: table.TableName }))).Table;
      const key = (schema) => JSON.stringify(schema.map((k) => [k.AttributeName, k.KeyType]));
      if (key(existing.KeySchema) !== key(table.KeySchema)) {
        throw new Error(`table ${table.TableName} exists with another key schema`);
      }
    }
  }
}

function dump(dir, result) {
  fs.mkdirSync(path.join(dir, 'resolvers'), { recursive: true });
  for (const [name, content] of result.templates) fs.writeFileSync(path.join(dir, name), content);
  const { mappingTemplates, ...config } = result.config;
  for (const source of config.dataSources) delete source.options;
  fs.writeFileSync(path.join(dir, 'simulator-config.json'), `${JSON.stringify(config, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'tables.json'), `${JSON.stringify(result.tables, null, 2)}\n`);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const credentials = {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    ...(process.env.AWS_SESSION_TOKEN ? { sessionToken: process.env.AWS_SESSION_TOKEN } : {}),
  };
  if (!credentials.accessKeyId || !credentials.secretAccessKey) {
    usage('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required (DynamoDB credentials)');
  }
  const { simulatorConfig } = require('./transform.cjs');
  const schema = fs.readFileSync(options.schema, 'utf8');
  const result = simulatorConfig(schema, {
    apiId: options.apiId,
    region: options.region,
    accountId: '123456789012',
    dynamodb: { endpoint: options.dynamodbEndpoint, region: options.region, credentials },
  });
  for (const line of result.logs) process.stderr.write(`transformer ${line}\n`);
  if (options.dump) dump(options.dump, result);

  const { DynamoDBClient } = require('@aws-sdk/client-dynamodb');
  const client = new DynamoDBClient({ endpoint: options.dynamodbEndpoint, region: options.region, credentials });
  await createTables(client, result.tables);

  const { AmplifyAppSyncSimulator } = require('@aws-amplify/amplify-appsync-simulator');
  const port = options.port || (await freePort());
  const simulator = new AmplifyAppSyncSimulator({ port });
  await simulator.start();
  simulator.init(result.config);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await simulator.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  for (const table of result.tables) {
    const model = table.TableName.split('-')[0];
    process.stdout.write(`MODEL_TABLE ${model} ${table.TableName}\n`);
  }
  process.stdout.write(`READY http://127.0.0.1:${port}/graphql\n`);
}

main().catch((e) => {
  process.stderr.write(`serve.cjs: ${redact(e && e.stack ? e.stack : e)}\n`);
  process.exit(1);
});
