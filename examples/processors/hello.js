// hello.js: the smallest processor. Run it at /processor/<id>/run: `main(request)` returns a
// string, which is answered as the body with status 200 (text/plain). It ignores the request, so
// a benchmark measures the platform, not the code; it answers what examples/wagi-hello answers.
function main(request) {
  return "Hello, world!\n";
}
