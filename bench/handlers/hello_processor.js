// FFAAS processor for the benchmark, run through /processor/<id>/run (no prelude).
function main(request) { return "Hello, world!\n"; }
