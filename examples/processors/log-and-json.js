// log-and-json.js: a processor for /processor/<id>/run_with_prelude. It logs twice (two `log`
// items in the run's conversation: "one" and `two {"n":2}`) and returns an object, which is
// answered as a JSON body (application/json) with status 200. The benchmarks use it.
async function main(fh, request) {
  fh.log("one");
  fh.log("two", { n: 2 });
  return { ok: true, method: request.method };
}
