// FFAAS processor for the benchmark, run through /processor/<id>/run_with_prelude:
// two log items in the conversation, then a JSON response.
async function main(fh, request) { fh.log("one"); fh.log("two", {n: 2}); return {code: 200, headers: {"content-type": "application/json"}, body: JSON.stringify({ok: true, method: request.method})}; }
