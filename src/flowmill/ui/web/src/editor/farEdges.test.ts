import { describe, expect, it } from "vitest";
import { farEdgePaths, type Box } from "./farEdges";

const box = (x: number, y: number, handles: string[] = []): Box => ({ x, y, width: 200, height: 60, handles });

describe("farEdgePaths", () => {
  it("draws each edge from its source handle's height to the target's middle, by kind", () => {
    const boxes = new Map([
      ["a", box(0, 0, ["true", "false", "error"])],
      ["b", box(300, 0)],
      ["c", box(300, 100)],
    ]);
    const paths = farEdgePaths(
      [
        { source: "a", target: "b", sourceHandle: "true" },
        { source: "a", target: "c", sourceHandle: "error" },
        { source: "b", target: "c" },
        { source: "a", target: "gone" },
      ],
      boxes,
      new Set([2]),
    );
    // three handles on a 60 px node: at 15, 30 and 45 px
    expect(paths.plain).toBe("M200 15C250 15 250 30 300 30");
    expect(paths.error).toBe("M200 45C250 45 250 130 300 130");
    expect(paths.invalid).toBe("M500 30C400 30 400 130 300 130");
  });

  it("keeps the path of an edge whose boxes are unchanged, redraws a moved one's", () => {
    const a = box(0, 0);
    const memo = new Map();
    const edges = [{ source: "a", target: "b" }];
    farEdgePaths(edges, new Map([["a", a], ["b", box(300, 0)]]), new Set(), memo);
    const kept = memo.get(0);
    farEdgePaths(edges, new Map([["a", a], ["b", kept.to]]), new Set(), memo);
    expect(memo.get(0)).toBe(kept);
    const moved = farEdgePaths(edges, new Map([["a", a], ["b", box(400, 0)]]), new Set(), memo);
    expect(moved.plain).toBe("M200 30C300 30 300 30 400 30");
  });

  it("draws nothing without edges", () => {
    expect(farEdgePaths([], new Map(), new Set())).toEqual({ plain: "", error: "", invalid: "" });
  });
});
