// The Vercel AI SDK (ai 5, @ai-sdk/openai 2) at chatwire: its default `openai(model)`, which
// speaks the Responses API. Run by tests/openai_api/test_vercel_ai_sdk.py as
//   node vercel_ai_sdk.cjs SDK_DIR BASE_URL MODEL
// with the chatwire token in CHATWIRE_TOKEN; SDK_DIR is where `npm install ai@5
// @ai-sdk/openai@2` was run. It prints one JSON object: what each case got.
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");

const [sdkDir, baseURL, model] = process.argv.slice(2);
const sdk = createRequire(path.join(sdkDir, "package.json"));
const { generateText, streamText, tool, jsonSchema, stepCountIs } = sdk("ai");
const { createOpenAI } = sdk("@ai-sdk/openai");

const openai = createOpenAI({ baseURL, apiKey: process.env.CHATWIRE_TOKEN });

async function generated() {
  const result = await generateText({ model: openai(model), prompt: "Say hello from generateText" });
  return { text: result.text, finishReason: result.finishReason, usage: result.usage };
}

async function streamed() {
  const result = streamText({ model: openai(model), prompt: "Say hello from streamText" });
  const chunks = [];
  for await (const chunk of result.textStream) chunks.push(chunk);
  return { chunks, text: await result.text, usage: await result.usage };
}

async function toolRoundTrip() {
  const calls = [];
  const weather = tool({
    description: "The current weather in a city.",
    inputSchema: jsonSchema({
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
      additionalProperties: false,
    }),
    execute: async (input) => {
      calls.push(input);
      return { city: input.city, forecast: "sunny, 21 degrees" };
    },
  });
  const result = await generateText({
    model: openai(model),
    prompt: "Lyon",
    tools: { get_weather: weather },
    stopWhen: stepCountIs(3),
  });
  return {
    calls,
    steps: result.steps.map((step) => ({
      finishReason: step.finishReason,
      toolCalls: step.toolCalls.map((call) => ({ name: call.toolName, input: call.input })),
      text: step.text,
    })),
    text: result.text,
  };
}

async function main() {
  const out = {};
  for (const [name, run] of Object.entries({ generated, streamed, toolRoundTrip })) {
    try {
      out[name] = await run();
    } catch (error) {
      out[name] = { error: String(error && error.stack ? error.stack : error) };
    }
  }
  process.stdout.write(JSON.stringify(out));
}

main();
