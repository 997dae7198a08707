// Runs the ioredis snippet 'cachebridge endpoints' prints (given as the file named by
// argv[2]), then writes each key given on stdin (one per line) through the cluster and
// reads it back. Prints one JSON line: {"written": n, "nodes": ["host:port", ...]}.
const fs = require("fs");
const snippet = fs.readFileSync(process.argv[2], "utf8");
const keys = fs.readFileSync(0, "utf8").split("\n").filter(Boolean);
const timer = setTimeout(() => { console.error("timed out"); process.exit(3); }, 60000);

(async () => {
  const cluster = new Function("require", snippet + "\nreturn cluster;")(require);
  let written = 0;
  for (const key of keys) {
    await cluster.set(key, "ioredis");
    if ((await cluster.get(key)) !== "ioredis") throw new Error(`read back ${key}`);
    written += 1;
  }
  const nodes = cluster.nodes("all").map((n) => `${n.options.host}:${n.options.port}`).sort();
  console.log(JSON.stringify({ written, nodes }));
  await cluster.quit();
  clearTimeout(timer);
})().catch((err) => { console.error(String(err && err.stack || err)); process.exit(2); });
