/**
 * The shipped configs load and say what the paper and the reference do (issue #14 §3): the UTGen paper
 * configs (configs/paper/utgen-*.yaml) use the reference's fixed 2 s / 1 s limits, state their memory limit,
 * sample as the paper (T 0.7, top-p 0.9; n 1 × 3 runs), score the Random and Prompted baselines, read pinned
 * data (a 40-hex commit, and the git blob id for GitHub files) and HE+Fix the way he_intrinsic_eval.py does;
 * configs/tulu.yaml is self-generated (App. B) through one key. Every config under configs/ validates.
 */
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../pipeline/config.ts";
import { generationSetting } from "../stages/emit-sft.ts";

const ROOT = path.resolve(__dirname, "..");
const HEX40 = /^[0-9a-f]{40}$/;
const yamls = (dir: string) =>
  readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => path.join(dir, f));

describe("shipped configs", () => {
  it("every config under configs/ and configs/paper/ validates", async () => {
    const files = [...yamls("configs"), ...yamls("configs/paper")];
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) await expect(loadConfig(path.join(ROOT, f)), f).resolves.toBeTruthy();
  });

  const paper = yamls("configs/paper").filter((f) => path.basename(f).startsWith("utgen-"));
  it("the UTGen paper configs follow the paper's protocol and the reference's limits", async () => {
    expect(paper.map((f) => path.basename(f)).sort()).toEqual([
      "utgen-hefix.yaml",
      "utgen-mbppplus-fix-hard.yaml",
      "utgen-mbppplus-fix.yaml",
      "utgen-select-mbppplus.yaml",
    ]);
    for (const f of paper) {
      const raw = YAML.parse(readFileSync(path.join(ROOT, f), "utf8"));
      expect(raw.executor.memory_mb, `${f} states its memory limit`).toBeTypeOf("number");
      const { root } = await loadConfig(path.join(ROOT, f));
      expect(root.executor, f).toMatchObject({ calibrate: false, buggy_timeout_s: 2, gold_timeout_s: 1 });
      expect(root.validate, f).toMatchObject({ temperature: 0.7, top_p: 0.9, n: 1, runs: 3, max_tokens: 2560 });
      expect(root.validate.baselines, f).toEqual(["random", "prompted"]);
      for (const s of root.validate.sets) {
        const pin = s.github ?? s.hub;
        expect(pin, `${f}: ${s.name} is read from a pinned source`).toBeTruthy();
        expect(pin.revision, `${f}: ${s.name}`).toMatch(HEX40);
        if (s.github) expect(s.github.blob, `${f}: ${s.name}`).toMatch(HEX40);
      }
    }
    const he = (await loadConfig(path.join(ROOT, "configs/paper/utgen-hefix.yaml"))).root.validate.sets[0];
    expect(he).toMatchObject({ format: "humanevalpack", scoring: "he", buggy_code: "body", hub: { repo: "bigcode/humanevalpack" } });
    const sel = (await loadConfig(path.join(ROOT, "configs/paper/utgen-select-mbppplus.yaml"))).root;
    expect(sel.validate.sets[0].exclude).toEqual(["mbppplus_fix_hard"]);
    expect(sel.select.set).toBe("mbppplus_select");
  });

  it("configs/tulu.yaml is self-generated: one key names the generation model and the trained model", async () => {
    const { root } = await loadConfig(path.join(ROOT, "configs/tulu.yaml"));
    expect(root.train.model_path).toBe(root.llm.model);
    expect(generationSetting(root, "/nonexistent-run")).toMatch(/^self-generated \(App\. B\)/);
    const distilled = (await loadConfig(path.join(ROOT, "configs/tulu.yaml"), ["llm.model=Qwen/Qwen2.5-Coder-32B-Instruct"])).root;
    expect(generationSetting(distilled, "/nonexistent-run")).toMatch(/^distilled: Qwen\/Qwen2\.5-Coder-32B-Instruct wrote the data; train fine-tunes Qwen\/Qwen2\.5-Coder-7B-Instruct/);
    const demo = (await loadConfig(path.join(ROOT, "configs/demo.yaml"))).root;
    expect(generationSetting(demo, "/nonexistent-run")).toMatch(/^heuristic backend/);
  });
});
