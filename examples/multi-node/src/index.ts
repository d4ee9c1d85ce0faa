export { startLocalPostgres, type LocalPostgres } from './postgres.js';
