// A Node service's chat turn through the mesh's gRPC port:
//   TILORES_X_ADDR=localhost:9090 TILORES_X_TLS_DIR=<certificate folder> npm run chat -- "<question>"
// prints the answer as it streams, then the model and the completion id.
import { Code, ConnectError } from "@connectrpc/connect";
import { chat, routerClient } from "./mesh.js";

const address = process.env.TILORES_X_ADDR ?? "localhost:9090";
const tlsDir = process.env.TILORES_X_TLS_DIR;
const question = process.argv.slice(2).join(" ");
if (!tlsDir || !question) {
  console.error('usage: TILORES_X_TLS_DIR=<folder with tls.crt, tls.key, ca.crt> npm run chat -- "<question>"');
  process.exit(2);
}

const { router, close } = routerClient(address, tlsDir);
try {
  const answer = await chat(router, question, (text) => process.stdout.write(text));
  process.stdout.write(`\n[model ${answer.model}, ${answer.completionId}]\n`);
} catch (error) {
  const failure = ConnectError.from(error);
  console.error(`${Code[failure.code]}: ${failure.rawMessage}`);
  process.exitCode = 1;
} finally {
  close();
}
