// The editable canvas: React Flow drawing the definition. The definition stays the only
// state; the canvas keeps React Flow's own node list just for what changes every frame
// (a drag, a selection) and hands each finished gesture back as one change.
import "@xyflow/react/dist/style.css";
import {
  Background, Controls, Handle, MarkerType, MiniMap, Position, ReactFlow, useReactFlow, useStore,
  ViewportPortal, type Connection, type Edge, type Node, type NodeProps, type ReactFlowState,
} from "@xyflow/react";
import { createContext, forwardRef, memo, useCallback, useContext, useEffect, useImperativeHandle, useMemo, useRef, useState } from "react";
import type { Definition } from "../types";
import { handleOf, NODE_H, NODE_W } from "../graph/layout";
import {
  edgeKey, edgesOf, layoutPositions, nodesOf, outputHandles, positionOf,
  type NodeTypeInfo, type Problem, type XY,
} from "./model";
import { farEdgePaths, type Box, type Drawn } from "./farEdges";
import { bodyOf, workflowRefOf } from "./scope";

/** Where a node's links lead: into a loop's body, to a referenced workflow. */
export interface Navigation {
  openBody: (loopId: string) => void;
  openWorkflow: (workflowId: string) => void;
}
const NavigationContext = createContext<Navigation>({ openBody: () => undefined, openWorkflow: () => undefined });

export interface RunState {
  status: string;
  duration_ms: number | null;
  output?: unknown;
  error?: Record<string, unknown> | null;
}

type Data = {
  name: string;
  type: string;
  label: string;
  input: boolean;
  handles: string[];
  problems: string[];
  run?: RunState;
  pinned: boolean;
  body: number | null; // a loop's inline body: how many nodes it has
  ref: string | null; // the workflow a sub-workflow (or a loop) runs
};

function preview(v: unknown): string {
  if (v === undefined) return "";
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

const EditNode = memo(function EditNode({ data, id, selected }: NodeProps<Node<Data>>) {
  const n = data.handles.length;
  const run = data.run;
  const cls = ["flow-node", "edit-node"];
  if (run) cls.push(`node-${run.status}`);
  if (selected) cls.push("node-selected");
  if (data.problems.length) cls.push("node-invalid");
  return (
    <div
      className={cls.join(" ")}
      style={{ width: NODE_W, minHeight: Math.max(NODE_H, n * 16 + 20) }}
      data-node-id={id}
      data-status={run?.status ?? ""}
      data-problems={data.problems.length}
      data-pinned={data.pinned ? "true" : undefined}
      title={data.problems.join("\n") || `${data.name} (${data.type})`}
    >
      {data.input && <Handle type="target" position={Position.Left} />}
      <div className="flow-node-name">{data.name}</div>
      <div className="flow-node-meta">
        <span className="flow-node-type">{data.label}</span>
        {data.pinned && <span className="tag" title="output pinned as test data">pinned</span>}
        {run && (
          <span className={`status status-${run.status}`} data-testid="run-status">
            {run.status}
            {run.duration_ms !== null && run.duration_ms !== undefined ? ` · ${Math.round(run.duration_ms)} ms` : ""}
          </span>
        )}
      </div>
      {data.problems.length > 0 && (
        <div className="node-problem" role="note" data-testid="node-problem">
          ⚠ {data.problems[0]}
          {data.problems.length > 1 ? ` (+${data.problems.length - 1})` : ""}
        </div>
      )}
      {(data.body !== null || data.ref) && <NodeLinks id={id} body={data.body} workflowRef={data.ref} />}
      {run?.error ? (
        <div className="node-run-error" data-testid="node-error">{preview(run.error.message ?? run.error)}</div>
      ) : run?.output !== undefined ? (
        <div className="node-run-output" data-testid="node-output">{preview(run.output)}</div>
      ) : null}
      {(n ? data.handles : [""]).map((h, i) => (
        <Handle
          key={h || "default"}
          id={h || undefined}
          type="source"
          position={Position.Right}
          className={h === "error" ? "handle-error" : h ? "handle-branch" : undefined}
          style={{ top: `${((i + 1) * 100) / ((n || 1) + 1)}%` }}
          title={h || "output"}
        >
          {h && <span className="handle-label">{h}</span>}
        </Handle>
      ))}
    </div>
  );
});

/** The links on a loop or sub-workflow node: its body, the workflow it runs. */
function NodeLinks({ id, body, workflowRef }: { id: string; body: number | null; workflowRef: string | null }) {
  const nav = useContext(NavigationContext);
  return (
    <div className="node-links nodrag nopan">
      {body !== null && (
        <button type="button" className="small link-like" data-testid="open-body" onClick={() => nav.openBody(id)} title="Edit the nodes this loop runs for each item (or double-click the node)">
          Open body ({body} node{body === 1 ? "" : "s"}) ↘
        </button>
      )}
      {workflowRef && (
        <button type="button" className="small link-like" data-testid="open-workflow" onClick={() => nav.openWorkflow(workflowRef)} title={`Open workflow ${workflowRef} in the editor`}>
          Open workflow ↗
        </button>
      )}
    </div>
  );
}

const nodeTypes = { edit: EditNode };
// Constant props live out here: React Flow copies each prop into its store when it
// changes, and a new array on every render makes that an endless loop.
const DELETE_KEYS = ["Backspace", "Delete"];
const MULTI_KEYS = ["Shift", "Meta", "Control"];
// Fit leaves a fixed 24 px around the graph (a fraction of the canvas wasted a quarter
// of it on a wide workflow, making its nodes smaller than they need be) and never zooms
// past 100 %: a small workflow is shown at its real size, not blown up.
const FIT = { padding: "24px", maxZoom: 1, minZoom: 0.05 } as const;
const PRO = { hideAttribution: true };

/** How much of each node is drawn at the current zoom. Zoomed out, most of a node is
 * text too small to read, and painting it is most of a frame's cost on a big canvas
 * (bench/ui_editor.py): "far" drops the type line, the run's output, the handles'
 * and the edges' labels; "farther" also the names and the handles (the boxes, their
 * colours and the edges stay). */
export function detailAt(zoom: number): "near" | "far" | "farther" {
  return zoom < 0.22 ? "farther" : zoom < 0.45 ? "far" : "near";
}

/** Whether a node lies (partly) outside the canvas, for graphs the minimap is for. A
 * boolean selector: the canvas renders again only when the answer changes. */
function someNodeOutOfView(st: ReactFlowState): boolean {
  if (st.nodes.length <= 20 || st.nodes.length > 200 || !st.width || !st.height) return false;
  const [tx, ty, zoom] = st.transform;
  return st.nodes.some((n) => {
    const x = n.position.x * zoom + tx;
    const y = n.position.y * zoom + ty;
    const w = (n.measured?.width ?? NODE_W) * zoom;
    const h = (n.measured?.height ?? NODE_H) * zoom;
    return x < 0 || y < 0 || x + w > st.width || y + h > st.height;
  });
}

export interface CanvasHandle {
  fit: () => void;
  center: () => XY;
}

export const EditorCanvas = forwardRef<CanvasHandle, {
  def: Definition;
  types: Record<string, NodeTypeInfo>;
  problems: { nodes: Record<string, Problem[]>; edges: Record<number, Problem[]> };
  runs: Record<string, RunState>;
  pinned: Record<string, unknown>;
  selected: string[];
  onDropType: (type: string, at: XY) => void;
  onSelect: (ids: string[]) => void;
  onConnect: (source: string, target: string, handle: string | null) => void;
  onMove: (moved: Record<string, XY>) => void;
  onDelete: (nodeIds: string[], edgeKeys: string[]) => void;
  navigation: Navigation;
}>(function EditorCanvas({ def, types, problems, runs, pinned, selected, onDropType, onSelect, onConnect, onMove, onDelete, navigation }, ref) {
  const flow = useReactFlow();
  const wrapper = useRef<HTMLDivElement>(null);
  // a boolean-like selector: the canvas renders again only when the level changes
  const detail = useStore((st) => detailAt(st.transform[2]));
  useImperativeHandle(ref, () => ({
    fit: () => void flow.fitView({ ...FIT, duration: 0 }),
    center: () => {
      const r = wrapper.current?.getBoundingClientRect();
      if (!r) return { x: 0, y: 0 };
      return flow.screenToFlowPosition({ x: r.left + r.width / 2 - NODE_W / 2, y: r.top + r.height / 2 - NODE_H / 2 });
    },
  }), [flow]);

  const built: Node<Data>[] = useMemo(() => {
    const chosen = new Set(selected);
    // a definition written by hand (a loop's body) may have no positions: lay it out
    // for the view only, so looking at it changes nothing
    const laid = nodesOf(def).some((n) => !positionOf(n)) ? layoutPositions(def) : {};
    return nodesOf(def).map((n, i) => {
        const info = types[n.type];
        const body = bodyOf(n);
        return {
          id: n.id,
          type: "edit",
          selected: chosen.has(n.id),
          position: positionOf(n) ?? laid[n.id] ?? { x: 240 * (i % 6), y: 120 * Math.floor(i / 6) },
          data: {
            name: n.name || n.id,
            type: n.type,
            label: info?.label ?? n.type,
            input: info ? info.handles.input : true,
            handles: outputHandles(n, info, def),
            problems: (problems.nodes[n.id] ?? []).map((p) => p.message),
            run: runs[n.id],
            pinned: n.id in pinned,
            body: body ? nodesOf(body).length : null,
            ref: workflowRefOf(n),
          },
        };
      });
  }, [def, types, problems, runs, pinned, selected]);
  // React Flow keeps the nodes itself (uncontrolled): a drag moves one node in its
  // store without a React render of the whole list (the controlled way costs O(nodes)
  // per frame). The definition's changes are pushed in; each finished gesture comes
  // back as a change of the definition.
  const [initialNodes] = useState(built);
  // fit what was opened; an empty canvas keeps its viewport, so a dropped node stays
  // where it was dropped
  const [fitOnOpen] = useState(() => built.length > 0);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) return;
    // keep each node's measured size, so it is not hidden and measured again
    flow.setNodes(built.map((n) => {
      const measured = flow.getNode(n.id)?.measured;
      return measured ? { ...n, measured } : n;
    }));
  }, [built, flow]);
  const builtEdges: Edge[] = useMemo(
    () =>
      edgesOf(def).map((e, i) => {
        const handle = handleOf(e);
        const bad = problems.edges[i];
        const color = bad ? "var(--failed)" : handle === "error" ? "var(--failed)" : "var(--edge)";
        return {
          id: edgeKey(e, i),
          source: e.source,
          target: e.target,
          sourceHandle: handle || undefined,
          label: bad ? `⚠ ${bad[0].message}` : e.label ?? (handle || undefined),
          className: bad ? "edge-invalid" : handle === "error" ? "edge-error" : undefined,
          style: { stroke: color, strokeWidth: 1.6, strokeDasharray: handle === "error" ? "6 4" : undefined },
          labelStyle: { fill: bad || handle === "error" ? "var(--failed)" : "var(--fg)", fontSize: 12 },
          labelBgStyle: { fill: "var(--bg)" },
          markerEnd: { type: MarkerType.ArrowClosed, color },
        };
      }),
    [def, problems],
  );
  // Zoomed out past reading, React Flow gets no edges: FarEdges draws them (farEdges.ts).
  // A big workflow opens fitted, most often that far out: its edges wait for the fit to
  // say whether React Flow draws them, rather than being mounted (516 components for
  // the bench's workflow) to be removed a frame later.
  const far = detail === "farther";
  const [withheld] = useState(() => fitOnOpen && built.length > 150);
  const [initialEdges] = useState(() => (withheld ? [] : builtEdges));
  const fitted = useStore((st) => !st.fitViewQueued);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      if (!withheld) return;
    }
    if (!fitted) return;
    flow.setEdges((prev) => {
      if (far) return [];
      const selected = new Set(prev.filter((e) => e.selected).map((e) => e.id));
      return builtEdges.map((e) => (selected.has(e.id) ? { ...e, selected: true } : e));
    });
  }, [builtEdges, far, fitted, withheld, flow]);

  // the callbacks read the latest props through a ref, so their identity never changes
  const latest = useRef({ onConnect, onMove, onDelete, onSelect });
  latest.current = { onConnect, onMove, onDelete, onSelect };
  const handleConnect = useCallback((c: Connection) => latest.current.onConnect(c.source, c.target, c.sourceHandle ?? null), []);
  const handleDragStop = useCallback((_: unknown, __: unknown, dragged: Node[]) => {
    const moved: Record<string, XY> = {};
    for (const n of dragged) moved[n.id] = n.position;
    latest.current.onMove(moved);
  }, []);
  const handleDelete = useCallback(
    ({ nodes: ns, edges: es }: { nodes: Node[]; edges: Edge[] }) => latest.current.onDelete(ns.map((n) => n.id), es.map((e) => e.id)),
    [],
  );
  const handleSelection = useCallback(({ nodes: ns }: { nodes: Node[] }) => latest.current.onSelect(ns.map((n) => n.id)), []);
  const nav = useRef(navigation);
  nav.current = navigation;
  const stableNav = useMemo<Navigation>(() => ({ openBody: (id) => nav.current.openBody(id), openWorkflow: (id) => nav.current.openWorkflow(id) }), []);
  const handleDoubleClick = useCallback((_: unknown, n: Node) => {
    if ((n.data as Data).body !== null) nav.current.openBody(n.id);
  }, []);

  const mapped = useStore(someNodeOutOfView) && built.length > 20 && built.length <= 200;

  const isValidConnection = useCallback(
    (c: Connection | Edge) => {
      if (c.source === c.target) return false;
      const target = nodesOf(def).find((n) => n.id === c.target);
      return !target || (types[target.type]?.handles.input ?? true);
    },
    [def, types],
  );

  return (
    <div
      className={`editor-canvas detail-${detail}`}
      data-detail={detail}
      ref={wrapper}
      aria-label="Workflow canvas"
      onDragOver={(e) => {
        if (e.dataTransfer.types.includes("application/x-flowmill-node-type")) {
          e.preventDefault();
          e.dataTransfer.dropEffect = "copy";
        }
      }}
      onDrop={(e) => {
        const type = e.dataTransfer.getData("application/x-flowmill-node-type");
        if (!type) return;
        e.preventDefault();
        const at = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
        onDropType(type, { x: at.x - NODE_W / 2, y: at.y - NODE_H / 2 });
      }}
    >
      <NavigationContext.Provider value={stableNav}>
      <ReactFlow
        defaultNodes={initialNodes}
        defaultEdges={initialEdges}
        nodeTypes={nodeTypes}
        onConnect={handleConnect}
        isValidConnection={isValidConnection}
        onNodeDragStop={handleDragStop}
        onDelete={handleDelete}
        onSelectionChange={handleSelection}
        onNodeDoubleClick={handleDoubleClick}
        deleteKeyCode={DELETE_KEYS}
        multiSelectionKeyCode={MULTI_KEYS}
        fitView={fitOnOpen}
        fitViewOptions={FIT}
        minZoom={0.05}
        onlyRenderVisibleElements={built.length > 150}
        proOptions={PRO}
      >
        {far && <FarEdges def={def} invalid={problems.edges} />}
        <Background gap={20} size={1} />
        <Controls />
        {/* the minimap redraws every node on every frame of a drag: only for mid-sized
            graphs, and only while some node is out of view (over a graph that fits, it
            only hid the nodes under it) */}
        {mapped && <MiniMap pannable zoomable />}
      </ReactFlow>
      </NavigationContext.Provider>
    </div>
  );
});

/** The edges at the farthest zoom level, as three paths (see farEdges.ts), under the
 * nodes. Follows the nodes in React Flow's store, so a dragged node keeps its edges. */
function FarEdges({ def, invalid }: { def: Definition; invalid: Record<number, Problem[]> }) {
  const nodes = useStore((st) => st.nodes); // a new array whenever a node moves
  const bad = useMemo(() => new Set(Object.keys(invalid).map(Number)), [invalid]);
  // React Flow replaces only a moved node's object: the same node, the same box, and
  // an edge between two unchanged boxes keeps its path (farEdgePaths' memo)
  const cache = useRef({ boxes: new WeakMap<Node, Box>(), drawn: new Map<number, Drawn>(), def });
  if (cache.current.def !== def) cache.current = { boxes: new WeakMap(), drawn: new Map(), def };
  const paths = useMemo(() => {
    const boxes = new Map<string, Box>();
    for (const n of nodes) {
      let b = cache.current.boxes.get(n);
      if (!b) {
        b = {
          x: n.position.x,
          y: n.position.y,
          width: n.measured?.width ?? NODE_W,
          height: n.measured?.height ?? NODE_H,
          handles: (n.data as Data).handles,
        };
        cache.current.boxes.set(n, b);
      }
      boxes.set(n.id, b);
    }
    return farEdgePaths(edgesOf(def), boxes, bad, cache.current.drawn);
  }, [nodes, def, bad]);
  return (
    <ViewportPortal>
      <svg className="far-edges" aria-hidden="true" data-testid="far-edges">
        <path className="far-edge" d={paths.plain} />
        <path className="far-edge far-edge-error" d={paths.error} />
        <path className="far-edge far-edge-invalid" d={paths.invalid} />
      </svg>
    </ViewportPortal>
  );
}
