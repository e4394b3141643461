// Reading an array at an index the caller's loop or arithmetic keeps in range: under
// noUncheckedIndexedAccess a plain read is typed "maybe undefined", and a silent fallback value
// would hide a broken range. This read says which index broke it.
export function elementAt<T>(array: ArrayLike<T>, index: number): T {
  const value = array[index]
  if (value === undefined) throw new RangeError(`index ${index} is outside an array of ${array.length}`)
  return value
}
