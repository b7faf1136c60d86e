// The official openai Node SDK running a tool loop and a JSON-schema answer
// against the keyless offline model. Prints one JSON object for the test.
// Usage: node agent.mjs <base url> <api key>
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const question = "Does edwina.hawthorne@example.com have open tickets?";
const tools = [
  {
    type: "function",
    function: {
      name: "get_open_tickets",
      description: "The open support tickets of a customer",
      parameters: { type: "object", properties: { email: { type: "string" } }, required: ["email"] },
    },
  },
];
const messages = [{ role: "user", content: question }];

const whole = await client.chat.completions.create({ model: "offline", messages, tools });
const reply = whole.choices[0].message;
const call = reply.tool_calls[0];

const stream = await client.chat.completions.create({ model: "offline", messages, tools, stream: true });
let streamed = { id: "", name: "", arguments: "" };
let argumentPieces = 0;
for await (const chunk of stream) {
  for (const delta of chunk.choices[0]?.delta?.tool_calls ?? []) {
    if (delta.id) streamed.id = delta.id;
    if (delta.function?.name) streamed.name = delta.function.name;
    if (delta.function?.arguments) {
      streamed.arguments += delta.function.arguments;
      argumentPieces += 1;
    }
  }
}

messages.push(reply, { role: "tool", tool_call_id: call.id, content: JSON.stringify({ open: ["597128"] }) });
const answer = await client.chat.completions.create({ model: "offline", messages, tools });

const structured = await client.chat.completions.create({
  model: "offline",
  messages: [{ role: "user", content: "Credit score of edwina.hawthorne@example.com?" }],
  response_format: {
    type: "json_schema",
    json_schema: {
      name: "credit",
      strict: true,
      schema: {
        type: "object",
        properties: {
          customer_name: { type: "string" },
          transunion_credit_score: { type: ["integer", "null"] },
        },
        required: ["customer_name", "transunion_credit_score"],
        additionalProperties: false,
      },
    },
  },
});

console.log(
  JSON.stringify({
    call: { name: call.function.name, arguments: JSON.parse(call.function.arguments) },
    whole: { id: call.id, name: call.function.name, arguments: call.function.arguments },
    streamed,
    argumentPieces,
    answer: answer.choices[0].message.content,
    structured: JSON.parse(structured.choices[0].message.content),
  }),
);
