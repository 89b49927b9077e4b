// The Vercel AI SDK's OpenAI Responses provider against a turnstream server:
// one streamed turn that calls a tool, the SDK runs it and sends the output back,
// and a second streamed turn that answers. Prints one JSON line with what the SDK saw.
// Usage: TURNSTREAM_BASE_URL=http://127.0.0.1:PORT/v1 node ai_sdk_tool_round_trip.mjs MODEL
import { createOpenAI } from "@ai-sdk/openai";
import { jsonSchema, stepCountIs, streamText, tool } from "ai";

const openai = createOpenAI({ baseURL: process.env.TURNSTREAM_BASE_URL, apiKey: "unused" });
const executed = [];

const result = streamText({
  model: openai.responses(process.argv[2]),
  prompt: "What is the weather in Paris?",
  tools: {
    get_weather: tool({
      description: "The current weather in a city",
      inputSchema: jsonSchema({
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
        additionalProperties: false,
      }),
      execute: async ({ city }) => {
        executed.push(city);
        return { city, temperature_c: 18, sky: "clear" };
      },
    }),
  },
  stopWhen: stepCountIs(3),
});

const chunkTypes = [];
let streamed = "";
for await (const part of result.fullStream) {
  chunkTypes.push(part.type);
  if (part.type === "text-delta") streamed += part.text;
  if (part.type === "error") throw part.error;
}
const steps = await result.steps;
console.log(
  JSON.stringify({
    text: await result.text,
    streamed,
    executed,
    steps: steps.length,
    finishReason: await result.finishReason,
    toolCalls: steps.flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, input: c.input }))),
    chunkTypes: [...new Set(chunkTypes)],
  }),
);
