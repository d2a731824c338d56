/*
 * hello.c - the smallest useful FFAAS WebAssembly endpoint.
 *
 * A WAGI (CGI over WASI) module answers a request by writing a CGI response
 * to stdout: header lines, one blank line, then the body. This one ignores
 * the request entirely, so the benchmark measures the platform, not the guest.
 *
 * Build: make -C examples   (writes build/examples/hello.wasm)
 */
#include <stdio.h>

int main(void) {
    fputs("Content-Type: text/plain\n"
          "\n"
          "Hello, world!\n",
          stdout);
    return 0;
}
