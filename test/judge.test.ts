/**
 * The stdio output checker (pipeline/executor/judge.ts, `rl.checker`): every UTRL stdio reward and verdict
 * rests on it. Hand-written cases for each mode, the float tolerance and the integer rule (docs/utrl.md).
 */
import { describe, expect, it } from "vitest";
import { judgeStdout, stdoutMatches } from "../pipeline/executor/judge.ts";

describe("stdout checker, tokens mode (the default)", () => {
  it("ignores how whitespace and newlines split the tokens", () => {
    expect(stdoutMatches("1 2\n3\n", "1\n2 3")).toBe(true);
    expect(stdoutMatches("  a\t b \r\n", "a b")).toBe(true);
    expect(stdoutMatches("", "\n \n")).toBe(true);
  });
  it("needs the same tokens, in order, and the same count", () => {
    expect(stdoutMatches("1 2", "2 1")).toBe(false);
    expect(stdoutMatches("1 2 3", "1 2")).toBe(false);
    expect(stdoutMatches("YES", "yes")).toBe(false);
    expect(stdoutMatches("", "0")).toBe(false);
  });
  it("compares decimals within the tolerance, never integers", () => {
    expect(stdoutMatches("0.3333333", "0.33333333")).toBe(true); // 3.3e-8 apart
    expect(stdoutMatches("0.334", "0.333")).toBe(false); // 1e-3 apart
    expect(stdoutMatches("1e3", "1000.0")).toBe(true);
    expect(stdoutMatches("3", "3.0")).toBe(true); // one side is a decimal: numeric
    expect(stdoutMatches("3", "03")).toBe(false); // both integers: as written
    expect(stdoutMatches("-0", "0")).toBe(false);
    expect(stdoutMatches("1000000.5", "1000000.9")).toBe(true); // rel_tol 1e-6 of 1e6 = 1
    expect(stdoutMatches("1000000.5", "1000000.9", { rel_tol: 0, abs_tol: 1e-6 })).toBe(false);
    expect(stdoutMatches("0.5", "0.6", { abs_tol: 0.2 })).toBe(true);
    expect(stdoutMatches("nan", "nan")).toBe(true); // equal text
    expect(stdoutMatches("inf", "1e400")).toBe(false);
  });
});

describe("stdout checker, lines and exact modes", () => {
  it("lines: trailing spaces and trailing empty lines do not count, anything else does", () => {
    expect(stdoutMatches("a b  \r\nc\n\n\n", "a b\nc", { mode: "lines" })).toBe(true);
    expect(stdoutMatches("a  b\nc", "a b\nc", { mode: "lines" })).toBe(false);
    expect(stdoutMatches(" a\nc", "a\nc", { mode: "lines" })).toBe(false);
    expect(stdoutMatches("a\n\nc", "a\nc", { mode: "lines" })).toBe(false);
    expect(stdoutMatches("0.3333333", "0.33333333", { mode: "lines" })).toBe(false);
  });
  it("exact: byte equality", () => {
    expect(stdoutMatches("42\n", "42\n", { mode: "exact" })).toBe(true);
    expect(stdoutMatches("42\n", "42", { mode: "exact" })).toBe(false);
    expect(stdoutMatches("42", "43", { mode: "exact" })).toBe(false);
  });
  it("a run that did not end ok is its status, whatever it printed", () => {
    expect(judgeStdout({ status: "ok", value: "7\n", ms: 1 }, "7")).toBe("pass");
    expect(judgeStdout({ status: "ok", value: "8\n", ms: 1 }, "7")).toBe("fail");
    expect(judgeStdout({ status: "timeout", ms: 1 } as never, "7")).toBe("timeout");
    expect(judgeStdout({ status: "error", errorType: "ValueError", ms: 1 } as never, "7")).toBe("error");
    expect(judgeStdout({ status: "ok", value: 7, ms: 1 }, "7")).toBe("fail");
  });
});
