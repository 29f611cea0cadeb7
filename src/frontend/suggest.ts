/** "Did you mean" for the frontend's errors: the parser's BuildKit-compatible search. */
export { closestWord, withSuggestion } from '../dockerfile/suggest.js';
