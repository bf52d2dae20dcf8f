// A result as a chart (bar, line, scatter), drawn with Chart.js (see enhanceCharts).
export function enhanceCharts(root) {}
