// The official openai Node SDK against the mesh: list and retrieve models,
// a streamed chat, a legacy completion and embeddings. Prints one JSON
// object for the test to check.
// Usage: node models.mjs <base url> <api key>
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const listed = [];
for await (const model of client.models.list()) listed.push(model.id);
const offline = await client.models.retrieve("offline");
let missing = null;
try {
  await client.models.retrieve("no-such-model");
} catch (error) {
  missing = { status: error.status, code: error.code, param: error.param };
}
const stream = await client.chat.completions.create({
  model: "offline",
  stream: true,
  messages: [{ role: "user", content: "What is the status of edwina.hawthorne@example.com?" }],
});
let text = "";
let chunks = 0;
let model = null;
for await (const chunk of stream) {
  model = chunk.model;
  const delta = chunk.choices[0]?.delta?.content;
  if (delta) {
    text += delta;
    chunks += 1;
  }
}
const completion = await client.completions.create({
  model: "offline",
  prompt: "What is the credit score of edwina.hawthorne@example.com?",
  max_tokens: 400,
});
// The Node SDK asks for base64 and decodes it, as the Python one does.
const embedded = await client.embeddings.create({ model: "offline-embedding", input: ["credit score", "billing"] });
const embeddings = embedded.data.map((item) => item.embedding.length);
console.log(
  JSON.stringify({ listed, offline, missing, text, chunks, model, completion: completion.choices[0].text, embeddings }),
);
