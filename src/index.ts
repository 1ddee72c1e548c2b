/** Programmatic entry points: start a broker in-process (tests, embedding) or load its config. */
export { startBroker, type RunningBroker } from './server.js';
export { loadConfig, issuerFor, type Config } from './config/index.js';
export { migrate, readMigrations } from './db/migrator.js';
