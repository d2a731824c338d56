// The console's scripts: each page's progressive parts, started when the page has them.
import { initCreateEndpoint, initDeploy, initEnvironment, initRollback } from "./endpoints.js";
import { initBatches } from "./batches.js";
import { initLive } from "./live.js";
import { initReplay } from "./replay.js";
import { initTestRequest } from "./test_request.js";

function start() {
  initCreateEndpoint();
  initDeploy();
  initRollback();
  initEnvironment();
  initTestRequest();
  initLive();
  initReplay();
  initBatches();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
