// Save query keeps the chart the result is seen as: the Chart tab announces each change
// (chart:change) and the console form's hidden "chart" field carries the latest to the server.
export function listenForCharts() {
  document.addEventListener("chart:change", (event) => {
    document.querySelectorAll("input[data-chart-field]").forEach((field) => {
      field.value = event.detail ? JSON.stringify(event.detail) : "";
    });
  });
}
