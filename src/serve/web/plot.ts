/** Accuracy against epsilon as an SVG line plot: one line per defense, for one attack in one mode. */
import type { ResultRow } from "./api.js";

const NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

function el(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export function plotAccuracy(rows: ResultRow[], title: string): SVGSVGElement {
  const W = 560;
  const H = 320;
  const m = { left: 50, right: 170, top: 24, bottom: 40 };
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" }) as SVGSVGElement;
  svg.append(el("title", {}, title));
  const sorted = [...rows].sort((a, b) => a.epsilon - b.epsilon);
  const epsMax = Math.max(...sorted.map((r) => r.epsilon), 1e-9);
  const x = (e: number) => m.left + (e / epsMax) * (W - m.left - m.right);
  const y = (a: number) => H - m.bottom - a * (H - m.top - m.bottom);
  svg.append(el("line", { x1: m.left, y1: y(0), x2: W - m.right, y2: y(0), class: "axis" }));
  svg.append(el("line", { x1: m.left, y1: y(0), x2: m.left, y2: y(1), class: "axis" }));
  for (const a of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el("text", { x: m.left - 8, y: y(a) + 4, "text-anchor": "end" }, a.toFixed(2)));
  }
  for (const r of sorted)
    svg.append(el("text", { x: x(r.epsilon), y: H - m.bottom + 16, "text-anchor": "middle" }, String(r.epsilon)));
  svg.append(el("text", { x: (m.left + W - m.right) / 2, y: H - 6, "text-anchor": "middle" }, "epsilon"));
  svg.append(el("text", { x: m.left, y: 14 }, title));
  const defenses = [...new Set(sorted.flatMap((r) => Object.keys(r.accuracy)))];
  defenses.forEach((d, i) => {
    const pts = sorted.filter((r) => r.accuracy[d] !== undefined).map((r) => `${x(r.epsilon)},${y(r.accuracy[d])}`);
    const colour = COLOURS[i % COLOURS.length];
    svg.append(el("polyline", { points: pts.join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
    svg.append(el("text", { x: W - m.right + 10, y: m.top + 16 * i + 10, fill: colour }, d));
  });
  return svg;
}
