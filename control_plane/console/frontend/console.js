// The console's scripts: each page's progressive parts, started when the page has them.
import { initCreateEndpoint, initDeploy, initEnvironment, initRollback } from "./endpoints.js";
import { initLive } from "./live.js";
import { initTestRequest } from "./test_request.js";

function start() {
  initCreateEndpoint();
  initDeploy();
  initRollback();
  initEnvironment();
  initTestRequest();
  initLive();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
