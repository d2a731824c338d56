/*
 * echo.c - a WAGI (CGI over WASI) endpoint that echoes the request as JSON.
 *
 * How FFAAS runs it (see "Guest contracts" in the spec):
 *   - the request body arrives on stdin;
 *   - the request line and headers arrive as CGI environment variables:
 *     REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_LENGTH, and
 *     HTTP_<NAME> for each header (User-Agent -> HTTP_USER_AGENT,
 *     X-Echo -> HTTP_X_ECHO); the endpoint's own environment variables
 *     (here GREETING) are set alongside them;
 *   - the module writes a CGI response to stdout: header lines, a blank
 *     line, then the body. A "Status: <code>" header sets the HTTP status;
 *   - each line written to stderr becomes a "log" item of the conversation.
 *
 * Nothing here is FFAAS-specific: it is plain C against stdin, stdout and
 * getenv, and any WASI toolchain builds it.
 *
 * Try it:  POST /<endpoint-id>/hello/world?status=201  with the body "hi"
 *   -> status 201, {"method": "POST", "path": "/hello/world", ...}
 *
 * Build: make -C examples   (writes build/examples/echo.wasm)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads all of stdin. Returns a malloc'd buffer and stores its length in
 * *length; the buffer is not NUL-terminated because a body may contain NULs.
 * We read to end of file rather than trusting CONTENT_LENGTH: the host
 * closes stdin after the body, and a chunked request has no length at all. */
static char *read_body(size_t *length) {
    size_t capacity = 4096;
    size_t used = 0;
    char *buffer = malloc(capacity);
    if (buffer == NULL) {
        return NULL;
    }
    for (;;) {
        if (used == capacity) {
            char *bigger = realloc(buffer, capacity * 2);
            if (bigger == NULL) {
                free(buffer);
                return NULL;
            }
            buffer = bigger;
            capacity *= 2;
        }
        size_t got = fread(buffer + used, 1, capacity - used, stdin);
        used += got;
        if (got == 0) {
            break; /* end of file (or a read error: echo what we have) */
        }
    }
    *length = used;
    return buffer;
}

/* The status requested by a "status=<3 digits>" query parameter, else 200.
 * QUERY_STRING is the raw query, e.g. "a=1&status=201&b=2". */
static int status_from_query(const char *query) {
    const char *param = query;
    while (param != NULL && *param != '\0') {
        const char *end = strchr(param, '&');
        size_t len = end ? (size_t)(end - param) : strlen(param);
        if (len == 10 && strncmp(param, "status=", 7) == 0 &&
            param[7] >= '1' && param[7] <= '5' &&
            param[8] >= '0' && param[8] <= '9' &&
            param[9] >= '0' && param[9] <= '9') {
            return (param[7] - '0') * 100 + (param[8] - '0') * 10 + (param[9] - '0');
        }
        param = end ? end + 1 : NULL;
    }
    return 200;
}

/* Writes `length` bytes as a JSON string literal, quotes included.
 * Quotes and backslashes are escaped with a backslash and every control
 * character (below 0x20) as \u00XX, which is all JSON requires. Bytes from
 * 0x80 up are copied as they are: a UTF-8 body stays valid UTF-8. */
static void write_json_string(const char *text, size_t length) {
    putchar('"');
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            putchar('\\');
            putchar(c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

/* Writes an environment variable as a JSON string, or null when it is unset. */
static void write_json_env(const char *name) {
    const char *value = getenv(name);
    if (value == NULL) {
        fputs("null", stdout);
    } else {
        write_json_string(value, strlen(value));
    }
}

int main(void) {
    size_t body_length = 0;
    char *body = read_body(&body_length);
    if (body == NULL) {
        fputs("echo: out of memory reading the request body\n", stderr);
        return 1; /* a non-zero exit: the platform answers 500 */
    }

    /* A log line for the conversation record. */
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");
    fprintf(stderr, "echo: %s %s\n", method ? method : "-", path ? path : "-");

    /* The CGI header block, then the blank line that ends it. */
    const char *query = getenv("QUERY_STRING");
    printf("Content-Type: application/json\n");
    printf("X-Ffaas-Example: echo\n");
    printf("Status: %d\n", status_from_query(query));
    printf("\n");

    /* The body: one JSON object describing the request. */
    static const struct {
        const char *key;
        const char *variable;
    } fields[] = {
        {"method", "REQUEST_METHOD"},
        {"path", "PATH_INFO"},
        {"query", "QUERY_STRING"},
        {"user_agent", "HTTP_USER_AGENT"},
        {"x_echo", "HTTP_X_ECHO"},
        {"greeting", "GREETING"},
    };
    putchar('{');
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        printf("\"%s\": ", fields[i].key);
        write_json_env(fields[i].variable);
        fputs(", ", stdout);
    }
    fputs("\"body\": ", stdout);
    write_json_string(body, body_length);
    fputs("}\n", stdout);

    free(body);
    return 0;
}
