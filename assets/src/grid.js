// The result grid: sorting, filtering and expanding cells of a result table (see enhanceGrids).
export function enhanceGrids(root) {}
