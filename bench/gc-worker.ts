// The `toolfleet tools` CLI as the benchmark starts it: the same program, run
// with --expose-gc. On SIGUSR2 it collects garbage and prints its heap in use,
// so the memory measurement reads a worker after a full collection rather
// than wherever V8's heap sizing happens to be.
process.on("SIGUSR2", () => {
  globalThis.gc?.();
  process.stdout.write(`bench-heap-used-bytes ${process.memoryUsage().heapUsed}\n`);
});
await import("../src/cli/main.js");
