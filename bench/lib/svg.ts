/** A dependency-free horizontal bar chart, so a person can open the result in any browser. */
export interface Bar {
  label: string;
  value: number;
  note?: string;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function barChart(title: string, unit: string, bars: readonly Bar[]): string {
  const w = 900;
  const rowH = 34;
  const left = 260;
  const top = 50;
  const h = top + bars.length * rowH + 30;
  const max = Math.max(1e-9, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const palette = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1'];
  const rows = bars
    .map((b, i) => {
      const v = Number.isFinite(b.value) ? b.value : 0;
      const bw = Math.max(1, ((w - left - 140) * v) / max);
      const y = top + i * rowH;
      return [
        `<text x="${left - 8}" y="${y + 21}" text-anchor="end" font-size="13">${esc(b.label)}</text>`,
        `<rect x="${left}" y="${y + 6}" width="${bw.toFixed(1)}" height="${rowH - 12}" fill="${palette[i % palette.length]}"/>`,
        `<text x="${left + bw + 6}" y="${y + 21}" font-size="12">${Number.isFinite(b.value) ? v.toFixed(2) : 'n/a'} ${esc(unit)}${b.note ? ' ' + esc(b.note) : ''}</text>`,
      ].join('');
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${w / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>
${rows}
</svg>
`;
}
