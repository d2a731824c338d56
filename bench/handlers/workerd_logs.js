// workerd's counterpart of logs_processor.js: two console.log calls, then the same JSON response.
export default {
  async fetch(request) {
    console.log("one");
    console.log("two", { n: 2 });
    return new Response(JSON.stringify({ ok: true, method: request.method }), {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  },
};
