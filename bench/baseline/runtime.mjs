// A minimal Lambda runtime for Node.js, used because the official runtime interface client
// (aws-lambda-ric, a native addon) cannot be built offline. It does what the managed nodejs20.x
// runtime does for an ESM handler: import the handler module once (the init phase: Amplify's
// configure and generateClient run here), then loop over the Runtime API
// (GET /invocation/next, call the handler, POST /response or /error). Keep-alive HTTP, no logging.
import http from "node:http";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [host, port] = api.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1, noDelay: true });
const base = "/2018-06-01/runtime";

function request(method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(body);
    const req = http.request(
      {
        host,
        port: Number(port),
        method,
        path: urlPath,
        agent,
        noDelay: true,
        headers: payload
          ? { "content-type": "application/json", "content-length": payload.length }
          : {},
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    // One write for headers and body (no small-segment stall).
    req.end(payload);
  });
}

function errorDocument(error) {
  if (error instanceof Error) {
    return { errorType: error.name || "Error", errorMessage: error.message };
  }
  // Amplify's client.graphql rejects with the GraphQL result ({ data, errors }).
  const first = error?.errors?.[0];
  return {
    errorType: first?.errorType ?? "GraphQLError",
    errorMessage: first?.message ?? JSON.stringify(error),
  };
}

const here = path.dirname(fileURLToPath(import.meta.url));
const handlerFile = process.env.UC_BASELINE_HANDLER ?? path.join(here, "dist", "handler.mjs");
let handler;
try {
  ({ handler } = await import(pathToFileURL(handlerFile).href));
} catch (error) {
  await request("POST", `${base}/init/error`, JSON.stringify(errorDocument(error)));
  process.exit(1);
}

for (;;) {
  const next = await request("GET", `${base}/invocation/next`);
  const id = next.headers["lambda-runtime-aws-request-id"];
  const deadline = Number(next.headers["lambda-runtime-deadline-ms"]);
  const context = {
    awsRequestId: id,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: next.headers["lambda-runtime-invoked-function-arn"],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => deadline - Date.now(),
    callbackWaitsForEmptyEventLoop: true,
  };
  try {
    const result = await handler(JSON.parse(next.body), context);
    await request("POST", `${base}/invocation/${id}/response`, JSON.stringify(result ?? null));
  } catch (error) {
    await request("POST", `${base}/invocation/${id}/error`, JSON.stringify(errorDocument(error)));
  }
}
