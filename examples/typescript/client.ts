// Calls the fan-out workflow zim(1) on the Python nodes (group service-g) from
// TypeScript and prints what it returns (3). Usage: tsx client.ts [INVOCATION_ID]
import "./compat.ts";
import { Resonate } from "@resonatehq/sdk";

const id = process.argv[2] ?? `zim-ts-${Date.now()}`;
const resonate = new Resonate({ url: process.env.RESONATE_URL, group: "typescript-client" });

try {
  const result = await resonate.rpc<number>(id, "zim", 1, resonate.options({ target: "service-g" }));
  console.log(`zim(1) = ${result} (invocation ${id})`);
} finally {
  await resonate.stop();
}
