import { CELL_HEIGHT, CELL_WIDTH, GLYPH_HEIGHT, GLYPH_WIDTH, glyph } from "./bitmap-font.js";
import type { RgbImage } from "./codec.js";

/**
 * The X/Y/Z plot's grid image, laid out as AUTOMATIC1111 lays out its own: the cells in rows (x across, y down), the
 * x labels above the columns, the y labels left of the rows, and with a z axis one such grid per z value side by
 * side, each titled with its z label. Cells may differ in size (a Size axis): each slot is as large as the largest
 * cell and a smaller cell sits centred in it. Text is drawn with our bitmap font (bitmap-font.ts), so it renders
 * without any installed font; a label too long for its place wraps at spaces and ends in "..." when it still does
 * not fit.
 */

export interface GridLabels {
  /** One label per value of each axis ([""] for an unused axis). */
  x: readonly string[];
  y: readonly string[];
  z: readonly string[];
}

export interface GridOptions {
  /** Draw the labels and the legend (A1111's draw_legend; default true). */
  legend?: boolean;
  /** Pixels between cells (A1111's margin_size; default 0). */
  margin?: number;
  /** The legend line above everything: the axis names ("X: CFG Scale, Y: Sampler"); empty: none. */
  title?: string;
}

const PAPER = 255;
const INK = 0;
/** A cell that never ran (a failure or a cancel): dark grey, so it cannot pass for a generated image. */
const EMPTY_CELL = 64;
/** A label's lines at most; more are cut and the last ends in "...". */
const MAX_LABEL_LINES = 4;

/** Font pixels per image pixel for cells of this size: about A1111's font size, (w + h) / 25 pixels per line. */
export function labelScale(cellWidth: number, cellHeight: number): number {
  return Math.max(1, Math.round((cellWidth + cellHeight) / 25 / CELL_HEIGHT));
}

/** The text in lines of at most `maxChars`, broken at spaces where it can, at most `maxLines`, cut with "...". */
export function wrapLabel(text: string, maxChars: number, maxLines: number): string[] {
  const width = Math.max(1, maxChars);
  const lines: string[] = [];
  for (const paragraph of text.split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      let w = word;
      const candidate = line === "" ? w : `${line} ${w}`;
      if (candidate.length <= width) {
        line = candidate;
        continue;
      }
      if (line !== "") lines.push(line);
      while (w.length > width) {
        lines.push(w.slice(0, width));
        w = w.slice(width);
      }
      line = w;
    }
    lines.push(line);
  }
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, Math.max(1, maxLines));
  const last = kept[kept.length - 1]!;
  kept[kept.length - 1] = width <= 3 ? ".".repeat(width) : `${last.slice(0, width - 3)}...`;
  return kept;
}

/** A canvas filled with paper white. */
function canvas(width: number, height: number): RgbImage {
  return { width, height, data: new Uint8Array(width * height * 3).fill(PAPER) };
}

function fill(img: RgbImage, x0: number, y0: number, w: number, h: number, value: number): void {
  for (let y = Math.max(0, y0); y < Math.min(img.height, y0 + h); y++)
    img.data.fill(value, (y * img.width + Math.max(0, x0)) * 3, (y * img.width + Math.min(img.width, x0 + w)) * 3);
}

function paste(dst: RgbImage, src: RgbImage, x0: number, y0: number): void {
  for (let y = 0; y < src.height; y++) {
    const dy = y0 + y;
    if (dy < 0 || dy >= dst.height) continue;
    const from = Math.max(0, -x0);
    const to = Math.min(src.width, dst.width - x0);
    if (to <= from) continue;
    dst.data.set(
      src.data.subarray((y * src.width + from) * 3, (y * src.width + to) * 3),
      (dy * dst.width + x0 + from) * 3,
    );
  }
}

/** One line of text with its top-left corner at (x, y), each font pixel a scale x scale square. */
export function drawText(img: RgbImage, text: string, x: number, y: number, scale: number, value = INK): void {
  let cx = x;
  for (const ch of text) {
    const rows = glyph(ch);
    for (let r = 0; r < GLYPH_HEIGHT; r++)
      for (let c = 0; c < GLYPH_WIDTH; c++)
        if (rows[r]![c] === "#") fill(img, cx + c * scale, y + r * scale, scale, scale, value);
    cx += CELL_WIDTH * scale;
  }
}

/** Lines centred in a box (horizontally and vertically). */
function drawCentred(img: RgbImage, lines: readonly string[], x: number, y: number, w: number, h: number, s: number) {
  const lineHeight = CELL_HEIGHT * s;
  const top = y + Math.floor((h - lines.length * lineHeight + (CELL_HEIGHT - GLYPH_HEIGHT) * s) / 2);
  lines.forEach((line, i) => {
    const width = line.length * CELL_WIDTH * s - (CELL_WIDTH - GLYPH_WIDTH) * s;
    drawText(img, line, x + Math.floor((w - width) / 2), top + i * lineHeight, s);
  });
}

const charsIn = (width: number, s: number) => Math.floor((width + (CELL_WIDTH - GLYPH_WIDTH) * s) / (CELL_WIDTH * s));

/** One z value's grid: cells x across and y down, with the x labels above and the y labels on the left. */
function subGrid(
  cells: readonly (RgbImage | undefined)[],
  nx: number,
  ny: number,
  slot: { width: number; height: number },
  labels: Pick<GridLabels, "x" | "y">,
  legend: boolean,
  margin: number,
  s: number,
): RgbImage {
  const pad = 2 * s;
  const xs = legend && labels.x.some((l) => l !== "");
  const ys = legend && labels.y.some((l) => l !== "");
  // Two pads each side: labels of neighbouring columns must not read as one.
  const xLines = labels.x.map((l) => wrapLabel(l, charsIn(slot.width - 4 * pad, s), MAX_LABEL_LINES));
  const top = xs ? Math.max(...xLines.map((l) => l.length)) * CELL_HEIGHT * s + 2 * pad : 0;
  // A1111 gives the y labels three quarters of a cell's width; a narrow cell still gets room for a short word.
  const longest = Math.max(0, ...labels.y.map((l) => l.length));
  const left = ys ? Math.max(Math.floor((slot.width * 3) / 4), Math.min(longest, 12) * CELL_WIDTH * s + 2 * pad) : 0;
  const yLines = labels.y.map((l) =>
    wrapLabel(l, charsIn(left - 2 * pad, s), Math.max(1, Math.floor((slot.height - 2 * pad) / (CELL_HEIGHT * s)))),
  );
  const width = left + nx * slot.width + (nx - 1) * margin;
  const height = top + ny * slot.height + (ny - 1) * margin;
  const img = canvas(width, height);
  for (let iy = 0; iy < ny; iy++)
    for (let ix = 0; ix < nx; ix++) {
      const x = left + ix * (slot.width + margin);
      const y = top + iy * (slot.height + margin);
      const cell = cells[ix + iy * nx];
      if (!cell) fill(img, x, y, slot.width, slot.height, EMPTY_CELL);
      else
        paste(
          img,
          cell,
          x + Math.floor((slot.width - cell.width) / 2),
          y + Math.floor((slot.height - cell.height) / 2),
        );
    }
  if (xs)
    xLines.forEach((lines, ix) =>
      drawCentred(img, lines, left + ix * (slot.width + margin) + 2 * pad, pad, slot.width - 4 * pad, top - 2 * pad, s),
    );
  if (ys)
    yLines.forEach((lines, iy) =>
      drawCentred(img, lines, pad, top + iy * (slot.height + margin) + pad, left - 2 * pad, slot.height - 2 * pad, s),
    );
  return img;
}

/**
 * The whole plot: `cells` indexed x + y * xs + z * xs * ys (undefined: a cell that did not run). Returns the grid and
 * each z value's own grid (A1111's sub-grids; the grid itself when there is one z value).
 */
export function composeGrid(
  cells: readonly (RgbImage | undefined)[],
  labels: GridLabels,
  options: GridOptions = {},
): { grid: RgbImage; subGrids: RgbImage[] } {
  const nx = labels.x.length;
  const ny = labels.y.length;
  const nz = labels.z.length;
  const present = cells.filter((c): c is RgbImage => c !== undefined);
  const slot = {
    width: Math.max(8, ...present.map((c) => c.width)),
    height: Math.max(8, ...present.map((c) => c.height)),
  };
  const legend = options.legend ?? true;
  const margin = Math.max(0, Math.floor(options.margin ?? 0));
  const s = labelScale(slot.width, slot.height);
  const pad = 2 * s;
  const subGrids = Array.from({ length: nz }, (_, iz) =>
    subGrid(cells.slice(iz * nx * ny, (iz + 1) * nx * ny), nx, ny, slot, labels, legend, margin, s),
  );
  const zs = legend && labels.z.some((l) => l !== "");
  const sub = subGrids[0]!;
  const zLines = labels.z.map((l) => wrapLabel(l, charsIn(sub.width - 2 * pad, s), MAX_LABEL_LINES));
  const zTop = zs ? Math.max(...zLines.map((l) => l.length)) * CELL_HEIGHT * s + 2 * pad : 0;
  const title = legend ? (options.title ?? "") : "";
  const gap = nz > 1 ? Math.max(margin, CELL_WIDTH * s) : 0;
  const width = nz * sub.width + (nz - 1) * gap;
  const titleLines = title ? wrapLabel(title, charsIn(width - 2 * pad, s), MAX_LABEL_LINES) : [];
  const titleTop = titleLines.length ? titleLines.length * CELL_HEIGHT * s + 2 * pad : 0;
  const grid = canvas(width, titleTop + zTop + Math.max(...subGrids.map((g) => g.height)));
  titleLines.forEach((line, i) => drawText(grid, line, pad, pad + i * CELL_HEIGHT * s, s));
  subGrids.forEach((g, iz) => {
    const x = iz * (sub.width + gap);
    paste(grid, g, x, titleTop + zTop);
    if (zs) drawCentred(grid, zLines[iz]!, x + pad, titleTop + pad, g.width - 2 * pad, zTop - 2 * pad, s);
  });
  return { grid, subGrids };
}
