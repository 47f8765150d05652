// A Resonate worker in TypeScript that joins group service-c and serves baz,
// the last step of asyncrpc's await chain, in place of (or beside) node c.
// The server URL comes from RESONATE_URL; RESONATE_PID names the process.
import "./compat.ts";
import { type Context, Resonate } from "@resonatehq/sdk";

const group = process.env.RESONATE_GROUP ?? "service-c";

// baz ends the await chain: bar (node b) awaits it and adds 1, foo adds 1 more.
function* baz(ctx: Context): Generator<never, number, unknown> {
  console.log(`[${ctx.id}] running baz (typescript): returning 1`);
  return 1;
}

const resonate = new Resonate({
  url: process.env.RESONATE_URL,
  group,
  pid: process.env.RESONATE_PID,
});
resonate.register("baz", baz);
console.log(`typescript worker: serving baz in group ${group}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void resonate.stop().finally(() => process.exit(0));
  });
}
