// FFAAS processor for the benchmark's neighbours scenario (`--v8-bomb typed-array`, `--wasm-bomb
// typed-array`): keeps 16 MiB typed arrays until the run's memory limit (FFAAS_MAX_MEMORY_BYTES)
// stops it. On V8 their buffers live outside the JS heap (issue 10).
function main(request) {
  const kept = [];
  for (;;) kept.push(new Uint8Array(16 << 20).fill(kept.length & 255));
}
