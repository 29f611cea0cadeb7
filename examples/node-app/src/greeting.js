'use strict';
/** The greeting the app serves; the bench's "source change" edits this file. */
exports.greeting = (name) => `Hello, ${name}, from a kiln-built image`;
