// The workflow drawn with React Flow: one box per node (name, type, status), a handle
// per output (branches labelled, the error route red and dashed), laid out by dagre.
// Loaded on demand: the graph library is the largest part of the app.
import "@xyflow/react/dist/style.css";
import {
  Background, Controls, Handle, MarkerType, Position, ReactFlow,
  type Edge, type Node, type NodeProps,
} from "@xyflow/react";
import { memo, useMemo } from "react";
import type { Definition } from "../types";
import { layoutDefinition, NODE_H, NODE_W } from "./layout";

export interface NodeState {
  status: string;
  attempts: number;
}

type Data = {
  name: string;
  type: string;
  handles: string[];
  state?: NodeState;
  onError: string | null;
  selected: boolean;
};

const FlowNode = memo(function FlowNode({ data, id }: NodeProps<Node<Data>>) {
  const status = data.state?.status;
  const n = data.handles.length;
  return (
    <div
      className={`flow-node${status ? ` node-${status}` : ""}${data.selected ? " node-selected" : ""}`}
      style={{ width: NODE_W, height: NODE_H }}
      data-node-id={id}
      data-status={status ?? ""}
      title={`${data.name} (${data.type})${status ? ` — ${status}` : ""}`}
    >
      <Handle type="target" position={Position.Left} />
      <div className="flow-node-name">{data.name}</div>
      <div className="flow-node-meta">
        <span className="flow-node-type">{data.type}</span>
        {status && (
          <span className={`status status-${status}`}>
            {status}
            {data.state && data.state.attempts > 1 ? ` ×${data.state.attempts}` : ""}
          </span>
        )}
        {!status && data.onError && data.onError !== "fail" && (
          <span className="muted">on error: {data.onError}</span>
        )}
      </div>
      {(n ? data.handles : [""]).map((h, i) => (
        <Handle
          key={h || "default"}
          id={h || undefined}
          type="source"
          position={Position.Right}
          className={h === "error" ? "handle-error" : h ? "handle-branch" : undefined}
          style={{ top: `${((i + 1) * 100) / ((n || 1) + 1)}%` }}
          title={h || "output"}
        />
      ))}
    </div>
  );
});

const nodeTypes = { flow: FlowNode };

export default function WorkflowGraph({
  definition, states, selected, onSelect, height = 420,
}: {
  definition: Definition;
  states?: Record<string, NodeState>;
  selected?: string | null;
  onSelect?: (nodeId: string) => void;
  height?: number;
}) {
  const laid = useMemo(() => layoutDefinition(definition), [definition]);
  const nodes: Node<Data>[] = useMemo(
    () =>
      laid.nodes.map((n) => ({
        id: n.id,
        type: "flow",
        position: { x: n.x, y: n.y },
        data: {
          name: n.name, type: n.type, handles: n.handles, onError: n.onError,
          state: states?.[n.id], selected: selected === n.id,
        },
        draggable: false,
        connectable: false,
      })),
    [laid, states, selected],
  );
  const edges: Edge[] = useMemo(
    () =>
      laid.edges.map((e) => {
        const ran = states?.[e.source]?.status === "succeeded" && states?.[e.target] && states[e.target].status !== "skipped";
        const color = e.error ? "var(--failed)" : ran ? "var(--succeeded)" : "var(--edge)";
        return {
          id: e.id,
          source: e.source,
          target: e.target,
          sourceHandle: e.handle || undefined,
          label: e.label ?? undefined,
          className: e.error ? "edge-error" : undefined,
          style: { stroke: color, strokeWidth: 1.6, strokeDasharray: e.error ? "6 4" : undefined },
          labelStyle: { fill: e.error ? "var(--failed)" : "var(--fg)", fontSize: 12 },
          labelBgStyle: { fill: "var(--bg)" },
          markerEnd: { type: MarkerType.ArrowClosed, color },
        };
      }),
    [laid, states],
  );
  if (!laid.nodes.length) return <div className="empty">This version has no nodes.</div>;
  return (
    <div className="graph" style={{ height }} aria-label="Workflow graph">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ padding: 0.15, maxZoom: 1.1 }}
        minZoom={0.2}
        nodesDraggable={false}
        nodesConnectable={false}
        edgesFocusable={false}
        onNodeClick={(_, n) => onSelect?.(n.id)}
        proOptions={{ hideAttribution: true }}
      >
        <Background gap={20} size={1} />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
