package schema

// Levels of a block: 0 none, MinLevel..SoftMax challenge, HardMin..MaxLevel
// reject. These are the seed's levels.
const (
	MinLevel = 1
	SoftMax  = 5
	HardMin  = 6
	MaxLevel = 9
)

// LevelVerdict returns the verdict a block level calls for when nothing
// else (whitelist, verification) applies.
func LevelVerdict(level int) Verdict {
	switch {
	case level <= 0:
		return Pass
	case level < HardMin:
		return Challenge
	default:
		return Reject
	}
}
