/**
 * AST mutation (heuristic perturb): the mutation operators of stages/heuristic/ast_tools.py, and the
 * seeded round-robin order in which perturb takes their mutants.
 */
import type { Executor } from "../../pipeline/executor/types.ts";
import { Rng, runAstTool } from "../common.ts";

export const MUTATION_OPERATORS = [
  "comparison_swap",
  "arithmetic_swap",
  "constant_off_by_one",
  "range_bounds",
  "slice_bounds",
  "boolean_swap",
  "negate_condition",
  "drop_statement",
  "drop_branch",
  "return_value",
  "call_swap",
  "argument_swap",
  "string_constant",
] as const;

export interface Mutant {
  operator: string;
  line: number;
  /** The function the edit is in (the entry point or a helper it calls). */
  function?: string;
  description: string;
  code: string;
}

/** Mutants per operator that perturb asks ast_tools.py for. */
export const MAX_PER_OPERATOR = 40;

/** All mutants of `code` (reachable from the entry point), in a seeded round-robin order over operators. */
export async function orderedMutants(
  executor: Executor,
  rec: { id: string; code: string; entry_point: string },
  operators: readonly string[],
  seed: number,
): Promise<Mutant[]> {
  const res = await runAstTool<{ mutants: Mutant[] }>(executor, {
    op: "mutants",
    code: rec.code,
    entry_point: rec.entry_point,
    operators,
    max_per_operator: MAX_PER_OPERATOR,
  });
  return orderMutants(res.mutants, rec.id, seed);
}

/** The seeded round-robin order over operators in which perturb takes the mutants of record `id`. */
export function orderMutants(mutants: Mutant[], id: string, seed: number): Mutant[] {
  const rng = new Rng(seed, "perturb", id);
  const groups = new Map<string, Mutant[]>();
  for (const m of mutants) {
    const g = groups.get(m.operator) ?? [];
    g.push(m);
    groups.set(m.operator, g);
  }
  const order = rng.shuffle([...groups.keys()].sort()).map((k) => rng.shuffle(groups.get(k)!));
  const out: Mutant[] = [];
  for (let i = 0; out.length < mutants.length; i++) for (const g of order) if (i < g.length) out.push(g[i]);
  return out;
}

