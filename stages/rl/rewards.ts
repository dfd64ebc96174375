/**
 * UTRL's rewards (seed 002 §3, Eq. 1–4) and the evaluation statistics, as pure functions of pass flags.
 *
 * For a unit test U = {u_1 … u_n} on a task with ground-truth code c*, and code samples C = {c_1 … c_m}:
 *   valid(U)  = {u ∈ U : Pass(c*, u) = 1}                               (invalid cases are dropped)
 *   R_valid   = |valid(U)| / max(|U|, τ)                                Eq. 2 (τ = 12)
 *   R_disc    = (1/m) Σ_i 1[∃ u ∈ valid(U): Pass(c_i, u) = 0]          Eq. 1 (0 when m = 0 or no valid case)
 *   R         = λ · R_disc + (1 − λ) · R_valid                          Eq. 3 (λ = 0.85)
 *   R_code(c) = |{u ∈ valid(U) : Pass(c, u) = 1}| / |valid(U)|         Eq. 4 (0 when no case is valid)
 * |U| counts every case the unit test states (malformed ones included, they are never valid) up to the
 * case cap. A unit test that cannot be parsed at all gets R = R_valid = R_disc = 0 and code rewards 0.
 */

export interface RewardSettings {
  tau: number;
  lambda: number;
}

export interface Rewards {
  r_valid: number;
  r_disc: number;
  reward: number;
  code_rewards: number[];
  valid_cases: number;
}

/**
 * Rewards from pass flags: `gt[k]` — the ground truth passes case k (malformed cases: false);
 * `codes[i][k]` — code i passes case k. `nCases` is |U| (defaults to gt.length).
 */
export function computeRewards(gt: boolean[], codes: boolean[][], s: RewardSettings, nCases = gt.length): Rewards {
  const valid: number[] = [];
  gt.forEach((ok, k) => ok && valid.push(k));
  const r_valid = nCases === 0 && valid.length === 0 ? 0 : valid.length / Math.max(nCases, s.tau);
  const caught = codes.filter((row) => valid.some((k) => !row[k])).length;
  const r_disc = codes.length ? caught / codes.length : 0;
  const code_rewards = codes.map((row) => (valid.length ? valid.filter((k) => row[k]).length / valid.length : 0));
  return { r_valid, r_disc, reward: s.lambda * r_disc + (1 - s.lambda) * r_valid, code_rewards, valid_cases: valid.length };
}

/** The rewards of an unusable unit test: all zero. */
export function zeroRewards(nCodes: number): Rewards {
  return { r_valid: 0, r_disc: 0, reward: 0, code_rewards: new Array(nCodes).fill(0), valid_cases: 0 };
}

/** Ranks 1..n, ties sharing their average rank (as scipy.stats.rankdata's default). */
export function averageRanks(xs: number[]): number[] {
  const idx = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  const ranks = new Array<number>(xs.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && xs[idx[j + 1]] === xs[idx[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[idx[k]] = r;
    i = j + 1;
  }
  return ranks;
}

/** Pearson correlation; null when either side has no variance (or fewer than 2 points). */
export function pearson(a: number[], b: number[]): number | null {
  const n = a.length;
  if (n < 2 || b.length !== n) return null;
  const ma = a.reduce((x, y) => x + y, 0) / n;
  const mb = b.reduce((x, y) => x + y, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  if (saa === 0 || sbb === 0) return null;
  return Math.max(-1, Math.min(1, sab / Math.sqrt(saa * sbb)));
}

/** Spearman's rank correlation (Pearson on average ranks); null when either vector is constant. */
export function spearman(a: number[], b: number[]): number | null {
  return pearson(averageRanks(a), averageRanks(b));
}

/** Index of the best sample by `score` (higher is better); ties go to the lowest index. -1 when empty. */
export function bestOf(scores: number[]): number {
  let best = -1;
  for (let i = 0; i < scores.length; i++) if (best < 0 || scores[i] > scores[best]) best = i;
  return best;
}

/** Share of true flags (0 for an empty list). */
export function share(flags: boolean[]): number {
  return flags.length ? flags.filter(Boolean).length / flags.length : 0;
}
