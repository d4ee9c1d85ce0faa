// `@tidings/core/diagrams`: the lifecycle and consumer machines as JSON-able graphs, and those as Mermaid or DOT text.
export { lifecycleGraph, type StateGraph, type GraphState, type GraphEdge, type GraphKind } from './diagrams/graph.js';
export { machineGraph, consumerGraph } from './diagrams/machine-graph.js';
export { lifecycleDiagram, mermaidDiagram } from './diagrams/mermaid.js';
export { dotDiagram } from './diagrams/dot.js';
