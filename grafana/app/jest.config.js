// force timezone to UTC to allow tests to work regardless of local timezone
// generally used by snapshots, but can affect specific tests
process.env.TZ = 'UTC';

// Jest configuration provided by Grafana scaffolding, extended as documented in
// https://grafana.com/developers/plugin-tools/how-to-guides/extend-configurations#extend-the-jest-config
const base = require('./.config/jest.config');

module.exports = {
  ...base,
  transform: {
    ...base.transform,
    // d3-color 3.1.1 (pulled in by @grafana/data) ships ESM only as dist/*.mjs, which the scaffold's
    // `.(t|j)sx?` transform does not cover: compile .mjs files with the same swc settings.
    '^.+\\.mjs$': base.transform['^.+\\.(t|j)sx?$'],
  },
};
