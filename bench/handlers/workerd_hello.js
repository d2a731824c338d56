// workerd's counterpart of hello_processor.js: the same body, as text/plain.
export default {
  async fetch(request) {
    return new Response("Hello, world!\n", { headers: { "content-type": "text/plain; charset=utf-8" } });
  },
};
