// Jest setup provided by Grafana scaffolding
import './.config/jest-setup';

// The scaffold stubs canvas getContext() to return undefined, but @grafana/ui's Combobox measures
// option labels with a 2D context (measureText) while rendering: give it a minimal one.
HTMLCanvasElement.prototype.getContext = function getContext() {
  return {
    font: '',
    measureText: (text) => ({ width: String(text).length * 8 }),
  };
};
