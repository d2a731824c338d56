# workerd's configuration for the benchmark (bench/workerd.py starts it):
#   workerd serve bench/handlers/workerd.capnp --socket-addr hello=127.0.0.1:<port> --socket-addr logs=127.0.0.1:<port>
# The addresses below are placeholders; the benchmark always overrides them with free ports.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "hello", worker = .helloWorker),
    (name = "logs", worker = .logsWorker),
  ],
  sockets = [
    (name = "hello", address = "127.0.0.1:8787", http = (), service = "hello"),
    (name = "logs", address = "127.0.0.1:8788", http = (), service = "logs"),
  ],
);

const helloWorker :Workerd.Worker = (
  modules = [(name = "workerd_hello.js", esModule = embed "workerd_hello.js")],
  compatibilityDate = "2024-09-23",
);

const logsWorker :Workerd.Worker = (
  modules = [(name = "workerd_logs.js", esModule = embed "workerd_logs.js")],
  compatibilityDate = "2024-09-23",
);
