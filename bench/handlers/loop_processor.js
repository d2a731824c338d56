// FFAAS processor for the benchmark's neighbours scenario: never returns; FFAAS_RUN_TIMEOUT_MS stops it.
function main(request) { while (true) {} }
