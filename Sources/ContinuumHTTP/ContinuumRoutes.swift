import Continuum
import Hummingbird
