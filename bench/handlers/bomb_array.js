// FFAAS processor for the benchmark's neighbours scenario (`--v8-bomb array`, `--wasm-bomb array`):
// grows a JS array of 512 KiB arrays until the run's memory limit (FFAAS_MAX_MEMORY_BYTES) stops it.
// Everything it allocates is on the JS heap, a piece at a time.
function main(request) {
  const kept = [];
  for (;;) kept.push(new Array(1 << 16).fill(kept.length));
}
