// A tool module: what a tools worker runs (`toolfleet tools --tools ./greet.js` loads it too).
import { z } from "zod";
import { defineTool } from "../../src/index.js";

export const tools = [
  defineTool({
    name: "greet",
    description: "Greets someone by name.",
    parameters: z.object({ name: z.string().min(1) }),
    annotations: { readOnly: true },
    handler: ({ name }, ctx) => `Hello, ${name}! (from ${ctx.userId || "someone"})`,
  }),
];
