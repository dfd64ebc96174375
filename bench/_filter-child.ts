/** Child of bench/filter.ts: runs the filter through the real runner and prints its peak RSS. */
import { main } from "../pipeline/cli.ts";

let peak = 0;
const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 200);
const code = await main(process.argv.slice(2), { stdout: () => {}, stderr: () => {} });
clearInterval(timer);
const maxRss = Math.max(peak, process.resourceUsage().maxRSS * 1024);
const cpu = process.cpuUsage();
process.stdout.write(JSON.stringify({ code, maxRssMb: maxRss / 2 ** 20, nodeCpuS: (cpu.user + cpu.system) / 1e6 }) + "\n");
process.exit(code);
